"""janitor: keeps VITS-family voice-model training runs from eating the disk.

Stages, one module each: ``discovery`` (scan, torch-free), ``policy`` (pure retention
rules), ``executor`` (the only code that deletes), ``extract`` (the only code that imports
torch), ``watch``, ``config``, ``cli`` (thin: parse, call, print).
"""

__version__ = "0.1.0"
