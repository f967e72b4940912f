from janitor.cli import main

main()
