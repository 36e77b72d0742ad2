from orze.cli.app import main

main()
