"""mlops-runtime: the platform of projects generated from the MLOps GitOps template (serving, monitoring, release,
Argo, registry and lineage, the command line). A project runs it as `python -m <package> <command>`."""
