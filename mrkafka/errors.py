"""One root error type, and a subclass for each kind of failure a user must tell apart.

The CLI turns any ``MrkafkaError`` into one line on stderr and the subclass's ``exit_code``.
Each error carries only its message in ``args`` so that it pickles across Ray processes.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "BadInputError",
    "BadJobError",
    "Interrupted",
    "JobFailedError",
    "KafkaError",
    "KafkaUnavailableError",
    "MrkafkaError",
    "OutputExistsError",
    "SetupError",
    "TopicError",
    "TransientKafkaError",
    "WorkerLost",
]


class MrkafkaError(Exception):
    """Root of every error mrkafka reports to a user."""

    exit_code = 1


class BadJobError(MrkafkaError):
    """The job file is missing, does not import, or does not define a usable Job."""

    exit_code = 3


class BadInputError(MrkafkaError):
    """An input path, option value or input record the run cannot use."""

    exit_code = 2


class OutputExistsError(MrkafkaError):
    """The output directory exists and ``--overwrite`` was not given."""

    exit_code = 4


class JobFailedError(MrkafkaError):
    """The job's own code (map, reduce, finish) raised; the message says where."""

    exit_code = 5

    @classmethod
    def raised(cls, what: str, exc: Exception, where: str) -> JobFailedError:
        """``map raised ValueError: ... (input.txt at byte 42)``: the job's ``what`` raised ``exc`` at ``where``."""
        return cls(f"{what} raised {type(exc).__name__}: {exc} ({where})")


class WorkerLost(JobFailedError):
    """A task's process died (killed, out of memory, or its Ray node lost): its attempt may run again."""


class SetupError(MrkafkaError):
    """Something the machine must provide is missing (java, mvn, a free port)."""

    exit_code = 6


class KafkaError(MrkafkaError):
    """A Kafka operation failed."""

    exit_code = 7


class TransientKafkaError(KafkaError):
    """A Kafka failure that may pass (a broker restarting, a leader moving): worth retrying."""

    @classmethod
    def unavailable(cls, bootstrap: str) -> KafkaUnavailableError:
        return KafkaUnavailableError(f"no Kafka broker answers at {bootstrap} (start one with: mrkafka kafka up)")


class KafkaUnavailableError(TransientKafkaError):
    """No broker answered at the bootstrap address in time."""

    exit_code = 8


class TopicError(KafkaError):
    """A topic that should exist does not, or one that should not exists, or is misconfigured."""

    exit_code = 9


class AuthenticationError(KafkaError):
    """The broker did not accept who the client says it is (TLS, certificate, SASL credentials)."""

    exit_code = 10


class AuthorizationError(KafkaError):
    """The client's principal lacks an ACL for an operation; the message names both."""

    exit_code = 11

    @classmethod
    def denied(cls, operation: str, resource: str, name: str = "") -> AuthorizationError:
        """``not authorized to READ topic T``."""
        return cls(
            f"not authorized to {operation.upper()} {resource}{' ' + name if name else ''} "
            "(ask the cluster's admin for the ACL: mrkafka acl add)"
        )


class Interrupted(MrkafkaError):
    """Ctrl-C or SIGTERM stopped a run before it finished; the message says what was kept."""

    exit_code = 130
