"""Who is who: members of channels and user groups, and admins, cached briefly in Redis
(shared by every process) and for a few seconds in the process (a click then needs no Redis
round trip to learn who may decide).

A lookup that fails (a Slack outage, a missing scope, a deleted group) counts as nobody and
is logged: a person who cannot be confirmed as an approver is never treated as one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from bot.core.policy import Approvers, Gate, Policy
from bot.errors import UpstreamError
from bot.flow.chat import Chat
from bot.storage import keys
from bot.storage.connections import STORAGE_ERRORS
from bot.storage.store import Store

logger = logging.getLogger(__name__)


#: How long the process keeps a list it read from Redis's cache: far below that cache's own
#: lifetime (keys.CHANNEL_MEMBERS_TTL_S), so a change reaches every process about as soon.
LOCAL_TTL_S: Final = 10.0

#: At most this many lists kept in the process (channels and user groups); past it, the
#: expired ones go, then the oldest.
LOCAL_MAX_ENTRIES: Final = 512


class Directory:
    def __init__(self, store: Store, chat: Chat, policy: Policy) -> None:
        self.store = store
        self.chat = chat
        self.policy = policy
        self._local: dict[str, tuple[float, frozenset[str]]] = {}

    async def _cached(
        self, key: str, ttl_s: int, fetch: Callable[[], Awaitable[set[str]]], what: str
    ) -> set[str]:
        now = time.monotonic()
        local = self._local.get(key)
        if local is not None and local[0] > now:
            return set(local[1])
        value = await self.store.caches.cached(key)
        if value is not None:
            self._keep(key, now + LOCAL_TTL_S, frozenset(value))
            return set(value)
        try:
            members = await fetch()
        except UpstreamError as error:
            logger.error("cannot list %s; counting nobody: %r", what, error)
            return set()
        await self.store.caches.cache(key, sorted(members), ttl_s)
        self._keep(key, now + LOCAL_TTL_S, frozenset(members))
        return members

    def _keep(self, key: str, until: float, members: frozenset[str]) -> None:
        self._local.pop(key, None)  # re-inserted last: the dict's order is the age
        self._local[key] = (until, members)
        if len(self._local) <= LOCAL_MAX_ENTRIES:
            return
        now = time.monotonic()
        for stale in [k for k, (expires, _) in self._local.items() if expires <= now]:
            del self._local[stale]
        while len(self._local) > LOCAL_MAX_ENTRIES:
            del self._local[next(iter(self._local))]

    async def channel_members(self, channel_id: str) -> set[str]:
        return await self._cached(
            keys.channel_members(channel_id),
            keys.CHANNEL_MEMBERS_TTL_S,
            lambda: self.chat.channel_members(channel_id),
            f"members of channel {channel_id}",
        )

    async def usergroup_members(self, usergroup_id: str) -> set[str]:
        return await self._cached(
            keys.usergroup_members(usergroup_id),
            keys.USERGROUP_MEMBERS_TTL_S,
            lambda: self.chat.usergroup_members(usergroup_id),
            f"members of user group {usergroup_id}",
        )

    async def forget_channel(self, channel_id: str) -> None:
        """A channel's members changed: the next lookup asks Slack."""
        key = keys.channel_members(channel_id)
        self._local.pop(key, None)
        await self._forget(key)

    async def forget_usergroup(self, usergroup_id: str) -> None:
        """A user group changed: its members, and everyone's groups, are asked again."""
        key = keys.usergroup_members(usergroup_id)
        self._local.pop(key, None)
        await self._forget(key, keys.USERGROUPS)

    async def _forget(self, *cache_keys: str) -> None:
        try:
            await self.store.caches.forget(*cache_keys)
        except STORAGE_ERRORS as error:
            # the cached copy then lapses with its TTL (keys.CHANNEL_MEMBERS_TTL_S)
            logger.error("could not drop cached members %s: %r", cache_keys, error)

    async def members(self, approvers: Approvers) -> set[str]:
        """Everyone ``approvers`` names: channel members, user groups' members, users."""
        people = set(approvers.users)
        if approvers.channel:
            people |= await self.channel_members(approvers.channel)
        for usergroup in approvers.usergroups:
            people |= await self.usergroup_members(usergroup)
        return people

    async def deciders(self, gate: Gate | None) -> set[str]:
        """Who satisfies every requirement of ``gate`` (nobody without a gate)."""
        if gate is None or not gate.requirements:
            return set()
        people = await self.members(gate.requirements[0])
        for approvers in gate.requirements[1:]:
            people &= await self.members(approvers)
        return people

    async def usergroups_of(self, user_id: str) -> frozenset[str]:
        """The user groups ``user_id`` belongs to (all of the workspace's groups)."""
        groups = await self.store.caches.cached(keys.USERGROUPS)
        if groups is None:
            try:
                fetched = await self.chat.usergroups()
            except UpstreamError as error:
                logger.error("cannot list user groups; assuming none: %r", error)
                return frozenset()
            groups = {group: sorted(users) for group, users in fetched.items()}
            await self.store.caches.cache(keys.USERGROUPS, groups, keys.USERGROUPS_TTL_S)
        return frozenset(group for group, users in groups.items() if user_id in users)

    async def is_admin(self, user_id: str) -> bool:
        if user_id in self.policy.admin_users:
            return True
        for usergroup in self.policy.admin_usergroups:
            if user_id in await self.usergroup_members(usergroup):
                return True
        return False
