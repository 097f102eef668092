"""Errors the command line turns into a message and an exit code (no traceback)."""


class ParamsError(ValueError):
    """params.yaml is missing or wrong; the message names the field and the fix."""


class DataError(ValueError):
    """A data file is missing, unreadable or of an unknown format."""


class ContractViolation(ValueError):
    """The data breaks the contract; the report names columns, checks and rows."""


class GateFailed(RuntimeError):
    """The evaluated model does not meet the success criteria; nothing was registered."""


class SubmitError(RuntimeError):
    """A server (Argo, GitHub) could not be reached or refused the request."""


class MonitorBreach(RuntimeError):
    """A monitoring check found drift or outliers above the thresholds (the report is written)."""


class ManifestError(ValueError):
    """The Kubernetes manifests do not build or validate; the message names file, kind, name and field."""
