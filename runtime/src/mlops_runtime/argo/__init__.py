"""The pipeline on Argo Workflows: building blocks for pipelines/*.py, render, submit."""
