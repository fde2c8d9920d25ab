"""The jobs: the commands that run a model on files (enhance, evaluate, demo, export, speed)."""
