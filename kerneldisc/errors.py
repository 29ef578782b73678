"""Errors a user can act on. Library code raises these; only the CLI turns them into exit codes."""


class KerneldiscError(Exception):
    """Base class: the message alone must tell the user what is wrong and where."""


class TaskError(KerneldiscError):
    """A task folder or problem file is missing, malformed or inconsistent."""


class CandidateError(KerneldiscError):
    """A candidate file cannot be read (missing, not a file, not text)."""


class ConfigError(KerneldiscError):
    """A flag, config file or run folder is invalid."""


class ModelUnavailableError(KerneldiscError):
    """A model cannot be loaded offline; the message says how to get it."""
