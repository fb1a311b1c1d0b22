from dcgan.cli import main

main()
