"""The HTTP entrypoint: a FastAPI app built by `create_app(services)`."""
