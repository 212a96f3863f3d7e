from litert.cli import main

main()
