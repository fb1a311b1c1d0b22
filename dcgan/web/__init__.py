"""The generator as a web page: the pinned browser runtime (runtime), the folder that
`export --format web` writes (page, from the files in assets/) and `dcgan view` (server)."""
