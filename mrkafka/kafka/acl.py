"""ACLs, SCRAM users and the operations a principal may do, through librdkafka's admin client
(``SecurityAdmin``, an ``mrkafka.kafka.admin.Admin`` with these calls added).

``Acl`` is one binding in Kafka's model, named as
``kafka-acls`` names it: a principal is allowed or denied an operation on a resource (a topic,
group, transactional id or the cluster), by literal name or by prefix.

``check_access`` asks the brokers which operations the client's principal has on the topics
and groups a command will use (Kafka's ``include_authorized_operations``), so that a command
without an ACL it needs stops at once with the operation and resource named.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TopicCollection
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from mrkafka.errors import AuthenticationError, AuthorizationError, BadInputError, KafkaError
from mrkafka.kafka.admin import Admin
from mrkafka.kafka.security import ACL_OPERATIONS, SCRAM_ITERATIONS, ClientSecurity

__all__ = ["RESOURCES", "Acl", "SecurityAdmin", "check_access"]

#: Resource kinds, as ``acl list`` prints them and ``AuthorizationError`` names them.
RESOURCES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "cluster": ResourceType.BROKER,
    "transactional-id": ResourceType.TRANSACTIONAL_ID,
}
_CLUSTER_NAME = "kafka-cluster"
_MECHANISMS = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}


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


class SecurityAdmin(Admin):
    """``Admin`` with the calls on ACLs, SCRAM users and what a principal may do."""

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
        except (AuthorizationError, AuthenticationError):
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
        SecurityAdmin(bootstrap, security=security).check(topics, groups)
