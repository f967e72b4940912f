"""The web page (``janitor ui``, the Applio tab): an edge beside the command line and the
Python API, calling only the API and the use cases. gradio is imported here only."""
