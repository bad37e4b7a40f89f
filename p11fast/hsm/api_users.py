"""/users and /namespaces endpoints."""

from __future__ import annotations

from aiohttp import web

from p11fast.hsm import vault
from p11fast.hsm.core import ROLES, Caller, Hsm, new_id
from p11fast.hsm.errors import BadRequest, Conflict, Forbidden
from p11fast.hsm.routing import (
    ADMIN,
    ADMIN_OR_OPERATOR,
    OPERATIONAL,
    ROOT_ADMIN,
    Rule,
    created,
    endpoint,
    in_thread,
    json_body,
    json_response,
    no_content,
)
from p11fast.hsm.store import UserRecord
from p11fast.hsm.validate import adding_tag, check_id, removing_tag, split_user_id

ADMIN_RULE = Rule(OPERATIONAL, ADMIN)
READ = Rule(OPERATIONAL, ADMIN_OR_OPERATOR)


class UsersApi:
    def __init__(self, hsm: Hsm) -> None:
        self.hsm = hsm

    @endpoint("GET", "/users", ADMIN_RULE)
    async def list_users(self, request: web.Request, caller: Caller) -> web.Response:
        ids = [
            u.user_id
            for u in self.hsm.users.values()
            if not caller.namespace or u.namespace == caller.namespace
        ]
        return json_response([{"user": user_id} for user_id in sorted(ids)])

    @endpoint("POST", "/users", ADMIN_RULE)
    async def create_generated(self, request: web.Request, caller: Caller) -> web.Response:
        return created("users", await self._create(request, caller, caller.namespace, new_id()))

    @endpoint("POST", "/users/{UserID}", ADMIN_RULE)
    async def create_in_namespace(self, request: web.Request, caller: Caller) -> web.Response:
        prefix = request.match_info["UserID"]
        if not prefix.endswith("~"):
            raise BadRequest("POST /users/{UserID} needs a namespace prefix like 'ns~'")
        namespace = check_id(prefix[:-1], "namespace")
        return created("users", await self._create(request, caller, namespace, new_id()))

    @endpoint("PUT", "/users/{UserID}", ADMIN_RULE)
    async def create_named(self, request: web.Request, caller: Caller) -> web.Response:
        namespace, name = split_user_id(request.match_info["UserID"])
        await self._create(request, caller, namespace, name)
        return no_content(201)

    async def _create(self, request: web.Request, caller: Caller, namespace: str, name: str) -> str:
        self._check_may_create_in(caller, namespace)
        body = await json_body(request)
        real_name = body.string("realName")
        role = body.enum("role", ROLES)
        passphrase = body.passphrase("passphrase")
        body.done()
        user_id = f"{namespace}~{name}" if namespace else name
        if user_id in self.hsm.users:
            raise Conflict(f"user {user_id} already exists")
        hashed = await in_thread(vault.hash_passphrase, passphrase)
        self.hsm.add_user(UserRecord(user_id, namespace, role, real_name, hashed))
        return user_id

    def _check_may_create_in(self, caller: Caller, namespace: str) -> None:
        """Namespaced admins create users in their namespace; root admins in the root and in
        namespaces not created yet (to bootstrap a namespace's first admin)."""
        if namespace == caller.namespace:
            return
        if caller.namespace or namespace in self.hsm.namespaces:
            raise Forbidden("cannot create users in that namespace")

    @endpoint("GET", "/users/{UserID}", READ)
    async def get_user(self, request: web.Request, caller: Caller) -> web.Response:
        user = self._readable(request, caller)
        return json_response({"realName": user.real_name, "role": user.role})

    @endpoint("DELETE", "/users/{UserID}", ADMIN_RULE)
    async def delete_user(self, request: web.Request, caller: Caller) -> web.Response:
        user = self._target(request, caller, allow_root=False)
        if user.user_id == caller.user_id:
            raise BadRequest("cannot delete yourself")
        self.hsm.delete_user(user.user_id)
        return no_content()

    @endpoint("POST", "/users/{UserID}/passphrase", READ)
    async def set_passphrase(self, request: web.Request, caller: Caller) -> web.Response:
        user = self._target(request, caller, allow_root=False)
        if caller.role != "Administrator" and user.user_id != caller.user_id:
            raise Forbidden("operators may only change their own passphrase")
        body = await json_body(request)
        passphrase = body.passphrase("passphrase")
        body.done()
        hashed = await in_thread(vault.hash_passphrase, passphrase)
        self.hsm.update_user(user.user_id, lambda current: {"passphrase_hash": hashed})
        return no_content()

    @endpoint("GET", "/users/{UserID}/tags", READ)
    async def get_tags(self, request: web.Request, caller: Caller) -> web.Response:
        return json_response(self._readable(request, caller).tags)

    @endpoint("PUT", "/users/{UserID}/tags/{Tag}", ADMIN_RULE)
    async def add_tag(self, request: web.Request, caller: Caller) -> web.Response:
        user = self._operator(request, caller)
        self.hsm.update_user(user.user_id, adding_tag(request.match_info["Tag"]))
        return no_content()

    @endpoint("DELETE", "/users/{UserID}/tags/{Tag}", ADMIN_RULE)
    async def delete_tag(self, request: web.Request, caller: Caller) -> web.Response:
        # Only operators carry tags: for anyone else the tag does not exist, 404 as in
        # keyfender (handler_users.ml, handler_tags_tag resource_exists).
        user = self._target(request, caller, allow_root=False)
        self.hsm.update_user(user.user_id, removing_tag(request.match_info["Tag"]))
        return no_content()

    def _operator(self, request: web.Request, caller: Caller) -> UserRecord:
        user = self._target(request, caller, allow_root=False)
        if user.role != "Operator":
            raise BadRequest("tags can only be given to operators")
        return user

    def _readable(self, request: web.Request, caller: Caller) -> UserRecord:
        """Administrators read the users they reach; an operator only itself (keyfender
        endpoint.ml role_operator_get_self, handler_users.ml)."""
        if caller.role != "Administrator" and request.match_info["UserID"] != caller.user_id:
            raise Forbidden("operators may only read their own user")
        return self._target(request, caller, allow_root=True)

    def _target(self, request: web.Request, caller: Caller, allow_root: bool) -> UserRecord:
        """keyfender's target_same_namespace (src/keyfender/endpoint.ml): the caller's own
        namespace; a root caller also reaches users of namespaces that do not exist (any
        more), and with `allow_root` users of every namespace."""
        user_id = request.match_info["UserID"]
        namespace, _ = split_user_id(user_id)
        root_reach = allow_root or namespace not in self.hsm.namespaces
        if namespace != caller.namespace and not (root_reach and not caller.namespace):
            raise Forbidden("user is in another namespace")
        return self.hsm.user(user_id)


class NamespacesApi:
    def __init__(self, hsm: Hsm) -> None:
        self.hsm = hsm

    @endpoint("GET", "/namespaces", ROOT_ADMIN)
    async def list_namespaces(self, request: web.Request, caller: Caller) -> web.Response:
        return json_response([{"id": n} for n in sorted(self.hsm.namespaces)])

    @endpoint("PUT", "/namespaces/{NamespaceID}", ROOT_ADMIN)
    async def add(self, request: web.Request, caller: Caller) -> web.Response:
        self.hsm.add_namespace(check_id(request.match_info["NamespaceID"], "namespace"))
        return no_content()

    @endpoint("DELETE", "/namespaces/{NamespaceID}", ROOT_ADMIN)
    async def delete(self, request: web.Request, caller: Caller) -> web.Response:
        self.hsm.delete_namespace(check_id(request.match_info["NamespaceID"], "namespace"))
        return no_content()
