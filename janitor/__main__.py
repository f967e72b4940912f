from janitor._entry import main

main()
