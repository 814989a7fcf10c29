"""ACLs, SCRAM users and the operations a principal may do, through librdkafka's admin client.

aiokafka has no ACL, SCRAM-credential or authorized-operations calls; confluent-kafka (the
Python binding of librdkafka, kept by Confluent, shipped as wheels) has all of them, and is
used for these admin calls only. ``Acl`` is one binding in Kafka's model, named as
``kafka-acls`` names it: a principal is allowed or denied an operation on a resource (a topic,
group, transactional id or the cluster), by literal name or by prefix.

``check_access`` asks the brokers which operations the client's principal has on the topics
and groups a command will use (Kafka's ``include_authorized_operations``), so that a command
without an ACL it needs stops at once with the operation and resource named.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from mrkafka.errors import AuthenticationError, AuthorizationError, BadInputError, KafkaError, TransientKafkaError
from mrkafka.kafka.client import CONNECT_TIMEOUT
from mrkafka.kafka.security import ACL_OPERATIONS, SCRAM_ITERATIONS, ClientSecurity

__all__ = ["RESOURCES", "Acl", "SecurityAdmin", "check_access"]

#: librdkafka logs every failed connection; what matters reaches the user as an error.
_librdkafka_log = logging.getLogger("mrkafka.librdkafka")
_librdkafka_log.addHandler(logging.NullHandler())
_librdkafka_log.propagate = False

#: Resource kinds, as ``acl list`` prints them and ``AuthorizationError`` names them.
RESOURCES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "cluster": ResourceType.BROKER,
    "transactional-id": ResourceType.TRANSACTIONAL_ID,
}
_CLUSTER_NAME = "kafka-cluster"
_MECHANISMS = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}
_AUTH_CODES = {RdKafkaError._AUTHENTICATION, RdKafkaError._SSL, RdKafkaError.SASL_AUTHENTICATION_FAILED}
_DENIED_CODES = {
    RdKafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    RdKafkaError.GROUP_AUTHORIZATION_FAILED: "group",
    RdKafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
    RdKafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional-id",
}


def _operation(name: str) -> AclOperation:
    """``DescribeConfigs`` -> ``AclOperation.DESCRIBE_CONFIGS``."""
    return AclOperation[re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).upper()]


@dataclass(frozen=True, order=True)
class Acl:
    """One ACL binding (see the module docstring); ``name`` is empty for the cluster."""

    principal: str
    operation: str
    resource: str
    name: str = ""
    prefixed: bool = False
    deny: bool = False
    host: str = "*"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\w+:.+", self.principal):
            raise BadInputError(f"--principal must be TYPE:NAME (e.g. User:alice), not {self.principal!r}")

    def binding(self) -> AclBinding:
        return AclBinding(
            RESOURCES[self.resource],
            self.name or _CLUSTER_NAME,
            ResourcePatternType.PREFIXED if self.prefixed else ResourcePatternType.LITERAL,
            self.principal,
            self.host,
            _operation(self.operation),
            AclPermissionType.DENY if self.deny else AclPermissionType.ALLOW,
        )

    def format(self) -> str:
        """``User:alice  ALLOW  Read  topic  lines  literal  *``, tab-separated."""
        what = "DENY" if self.deny else "ALLOW"
        return "\t".join(
            [
                self.principal,
                what,
                self.operation,
                self.resource,
                self.name or "-",
                "prefixed" if self.prefixed else "literal",
                self.host,
            ]
        )

    @classmethod
    def of(cls, binding: AclBinding) -> Acl:
        resource = next(name for name, rtype in RESOURCES.items() if rtype == binding.restype)
        operation = next(op for op in ACL_OPERATIONS if _operation(op) == binding.operation)
        return cls(
            binding.principal,
            operation,
            resource,
            "" if resource == "cluster" else binding.name,
            binding.resource_pattern_type == ResourcePatternType.PREFIXED,
            binding.permission_type == AclPermissionType.DENY,
            binding.host,
        )


class SecurityAdmin:
    """librdkafka's admin client as ``security`` connects; each call waits for its answer and
    turns librdkafka's errors into mrkafka's (authentication, authorization, no broker)."""

    def __init__(self, bootstrap: str, security: ClientSecurity, timeout: float = CONNECT_TIMEOUT) -> None:
        self.bootstrap, self.timeout, self.security = bootstrap, timeout, security
        self._auth_errors: list[str] = []
        self._client = AdminClient(
            {
                "bootstrap.servers": bootstrap,
                **security.confluent_options(),
                "error_cb": self._error,
                "socket.connection.setup.timeout.ms": int(timeout * 1000),
            },
            logger=_librdkafka_log,
        )

    def _error(self, error: RdKafkaError) -> None:
        text = error.str()
        if error.code() in _AUTH_CODES or error.code() == RdKafkaError._TRANSPORT and "SSL" in text:
            self._auth_errors.append(self.security.refused(text))

    def _wait(self, future: Any, operation: str = "DESCRIBE", resource: str = "cluster", name: str = "") -> Any:
        while not future.done():
            self._client.poll(0.05)  # serves error_cb: a refused authentication ends the wait at once
            if self._auth_errors:
                raise AuthenticationError(f"authentication failed at {self.bootstrap}: {self._auth_errors[-1]}")
        try:
            return future.result()
        except KafkaException as exc:
            error = exc.args[0]
            if self._auth_errors:
                raise AuthenticationError(
                    f"authentication failed at {self.bootstrap}: {self._auth_errors[-1]}"
                ) from None
            if error.code() in _DENIED_CODES:
                raise AuthorizationError.denied(operation, resource, name) from None
            if error.code() in (RdKafkaError._TRANSPORT, RdKafkaError._TIMED_OUT, RdKafkaError._ALL_BROKERS_DOWN):
                raise TransientKafkaError.unavailable(self.bootstrap) from None
            raise KafkaError(f"{error.name()}: {error.str()}") from None

    def _options(self) -> dict[str, Any]:
        return {"request_timeout": self.timeout}

    # -- ACLs ------------------------------------------------------------------------------------

    def add_acls(self, acls: Iterable[Acl]) -> None:
        futures = self._client.create_acls([acl.binding() for acl in acls], **self._options())
        for future in futures.values():
            self._wait(future, "ALTER")

    def list_acls(self, principal: str | None = None) -> list[Acl]:
        found = self._wait(self._client.describe_acls(self._filter(principal), **self._options()))
        return sorted(Acl.of(binding) for binding in found)

    def remove_acls(self, acls: Iterable[Acl]) -> list[Acl]:
        """Delete the bindings ``acls`` name exactly; return those that were there."""
        filters = [self._exact(acl) for acl in acls]
        removed: list[Acl] = []
        for future in self._client.delete_acls(filters, **self._options()).values():
            removed += [Acl.of(binding) for binding in self._wait(future, "ALTER")]
        return sorted(removed)

    @staticmethod
    def _exact(acl: Acl) -> AclBindingFilter:
        b = acl.binding()
        return AclBindingFilter(
            b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
        )

    @staticmethod
    def _filter(principal: str | None) -> AclBindingFilter:
        return AclBindingFilter(
            ResourceType.ANY, None, ResourcePatternType.ANY, principal, None, AclOperation.ANY, AclPermissionType.ANY
        )

    # -- SCRAM users -----------------------------------------------------------------------------

    def add_user(self, name: str, password: str, mechanism: str = "SCRAM-SHA-512") -> None:
        info = ScramCredentialInfo(_MECHANISMS[mechanism], SCRAM_ITERATIONS)
        upsert = UserScramCredentialUpsertion(name, info, password.encode())
        for future in self._client.alter_user_scram_credentials([upsert], **self._options()).values():
            self._wait(future, "ALTER")

    def list_users(self) -> dict[str, list[str]]:
        """User -> the SCRAM mechanisms it has a credential for."""
        found = self._wait(self._client.describe_user_scram_credentials(**self._options()))
        return {
            user: sorted(i.mechanism.name.replace("_", "-") for i in d.scram_credential_infos)
            for user, d in sorted(found.items())
        }

    def delete_user(self, name: str) -> bool:
        """Delete every SCRAM credential of ``name``; whether it had any."""
        mechanisms = self.list_users().get(name, [])
        if not mechanisms:
            return False
        deletions = [UserScramCredentialDeletion(name, _MECHANISMS[m]) for m in mechanisms]
        for future in self._client.alter_user_scram_credentials(deletions, **self._options()).values():
            self._wait(future, "ALTER")
        return True

    def topic_id(self, name: str) -> str:
        """The id Kafka gave topic ``name`` when it was created: a topic deleted and created
        again under the same name has another."""
        (future,) = self._client.describe_topics(TopicCollection([name]), **self._options()).values()
        return str(self._wait(future, "DESCRIBE", "topic", name).topic_id)

    # -- what a principal may do ------------------------------------------------------------------

    def check(self, topics: Mapping[str, Iterable[str]] = (), groups: Mapping[str, Iterable[str]] = ()) -> None:
        """Raise ``AuthorizationError`` for the first operation (``READ``, ``WRITE``, ...) on a
        topic or group that the principal is not allowed; a topic or group that does not exist
        yet is left to the command (creating it needs an ACL of its own)."""
        topics, groups = dict(topics), dict(groups)
        if topics:
            futures = self._client.describe_topics(
                TopicCollection(list(topics)), include_authorized_operations=True, **self._options()
            )
            for name, future in futures.items():
                self._allowed(future, "topic", name, topics[name])
        if groups:
            futures = self._client.describe_consumer_groups(
                list(groups), include_authorized_operations=True, **self._options()
            )
            for name, future in futures.items():
                self._allowed(future, "group", name, groups[name])

    def _allowed(self, future: Any, resource: str, name: str, operations: Iterable[str]) -> None:
        wanted = [op.upper() for op in operations]
        try:
            description = self._wait(future, wanted[0], resource, name)
        except AuthorizationError:
            raise
        except KafkaError:  # unknown yet, or its coordinator moving: the command will tell
            return
        if description.authorized_operations is None:  # a broker that does not say
            return
        allowed = {op.name for op in description.authorized_operations}
        for operation in wanted:
            if operation not in allowed:
                raise AuthorizationError.denied(operation, resource, name)


def check_access(
    bootstrap: str,
    security: ClientSecurity,
    topics: Mapping[str, Iterable[str]] = (),
    groups: Mapping[str, Iterable[str]] = (),
) -> None:
    """``SecurityAdmin.check`` on a connection of its own, for a client that authenticates (a
    plaintext client is anonymous: what it may not do fails on its own, with the same error)."""
    if security.protocol != "PLAINTEXT":
        SecurityAdmin(bootstrap, security).check(topics, groups)
