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


class PromotionRefused(RuntimeError):
    """A promotion gate refused; each subclass is one reason with its own exit code."""


class NotInRegistry(PromotionRefused):
    """The model version (or the champion it is compared with) is not in the MLflow registry."""


class CriteriaNotMet(PromotionRefused):
    """The version's recorded evaluation fails the success criteria in params.yaml."""


class WorseThanChampion(PromotionRefused):
    """The version scores worse than the environment's champion, and no reason was given to allow it."""


class SkipsEnvironment(PromotionRefused):
    """The version is not pinned in the previous environment (dev -> staging -> prod)."""


class PinMismatch(PromotionRefused):
    """A pin file disagrees with the registry (storage URI, lineage, serving switch): it was edited by hand."""


class NotReproducible(PromotionRefused):
    """The version was trained from uncommitted changes (git_dirty): it may serve in the first environment only."""


class NoModelCard(PromotionRefused):
    """The version has no model card, or its card lacks a section (card.py): nobody can review what it is for."""


class RulesChanged(PromotionRefused):
    """A pull request changes the promotion rules (criteria, environments) together with a pin."""


class TaskFailed(RuntimeError):
    """A task of a workflow run on this machine (`pipeline run-local`) failed; the message names it and why."""


class RegistryOutOfSync(RuntimeError):
    """An MLflow alias champion-<env> is on another version than the environment's pin in git."""
