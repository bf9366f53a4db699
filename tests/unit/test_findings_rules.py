"""A positive and a negative case for every findings rule, on small real case files."""

from __future__ import annotations

from pathlib import Path

import pytest

from keytrail.config import default_config
from keytrail.levels import Level
from tests.unit.test_findings_support import Case, at

KEY = "AKIAEXAMPLEAGENTKEY1"
TMP = "ASIAEXAMPLETEMPKEY01"
BOT = "arn:aws:iam::111111111111:user/ledger-bot"


@pytest.fixture()
def case(tmp_path: Path) -> Case:
    return Case(tmp_path / "case.duckdb")


def _agent_ref(case: Case, agent: str, cred: str, minute: float, **kw: object) -> str:
    return case.event(
        time=at(minute),
        action="tool:s3_get_object",
        source="agent",
        agent=agent,
        credential=cred,
        kind="agent-credential-ref",
        **kw,
    )  # type: ignore[arg-type]


def _vault(case: Case, action: str, accessor: str, minute: float, **kw: object) -> str:
    """A Vault audit event made with the token ``accessor`` (``vault:<action>``)."""
    return case.event(
        time=at(minute),
        action=f"vault:{action}",
        source="vault",
        credential=accessor,
        kind="vault-token",
        **kw,
    )  # type: ignore[arg-type]


def _reads(case: Case, accessor: str, n: int, path: str, rtype: str) -> None:
    """``n`` reads by ``accessor``, a minute apart, of ``<path>0`` .. ``<path>{n-1}``."""
    for i in range(n):
        target = f"{path}{i}"
        _vault(case, "read", accessor, i, target=target, resources=[(target, rtype)])


# -- NHI9 reuse ---------------------------------------------------------------------------------
def test_credential_shared_by_agents(case: Case) -> None:
    _agent_ref(case, "agent-a", "ref-1", 0)
    _agent_ref(case, "agent-b", "ref-1", 5)
    _agent_ref(case, "agent-c", "ref-2", 5)
    [f] = case.findings("credential-shared-by-agents")
    assert f.subjects[:3] == ("ref-1", "agent-a", "agent-b")
    assert f.evidence == ("ev-0001", "ev-0002") and f.level is Level.HIGH
    assert "NHI9:2025" in f.frameworks and "ref-1" in f.recommendation


def test_inferred_uses_edge_does_not_make_sharing(case: Case) -> None:
    u = _agent_ref(case, "agent-a", "ref-1", 0)
    case.uses("agent-b", "ref-1", [u], confidence="inferred")
    assert case.findings("credential-shared-by-agents") == []


def test_credential_from_many_hosts(case: Case) -> None:
    for i, ip in enumerate(["198.51.100.7", "203.0.113.9", "192.0.2.44", "198.51.100.7"]):
        case.event(time=at(i), action="s3:GetObject", credential=KEY, src_ip=ip)
    for i, ip in enumerate(["198.51.100.7", "s3.amazonaws.com", "AWS Internal"]):
        case.event(time=at(i), action="s3:GetObject", credential="AKIAOTHERKEY00000001", src_ip=ip)
    [f] = case.findings("credential-used-from-many-hosts")
    assert f.subjects == (KEY,) and f.details["source_ips"] == [
        "198.51.100.7",
        "203.0.113.9",
        "192.0.2.44",
    ]
    assert f.evidence_count == 4 and "update-access-key" in f.recommendation


def test_credential_across_sessions(case: Case) -> None:
    for i in range(5):
        _agent_ref(case, "agent-a", "ref-1", i, session=f"conv-{i}")
    for i in range(4):
        _agent_ref(case, "agent-a", "ref-2", i, session=f"conv-{i}")
    [f] = case.findings("credential-used-across-sessions")
    assert f.subjects[0] == "ref-1" and len(f.evidence) == 5


# -- NHI7 long-lived ------------------------------------------------------------------------------
def test_long_term_key_used_by_agent(case: Case) -> None:
    u = case.event(time=at(0), action="s3:ListBuckets", credential=KEY, actor=BOT)
    case.uses("ledger-bot", KEY, [u], confidence="strong")
    u2 = case.event(time=at(0), action="s3:ListBuckets", credential=TMP)
    case.uses("ledger-bot", TMP, [u2])
    [f] = case.findings("long-term-key-used-by-agent")
    assert f.subjects[:2] == (KEY, "ledger-bot")
    assert "--user-name ledger-bot" in f.recommendation and "NHI7:2025" in f.frameworks


def test_long_term_key_inferred_link_is_said_and_unowned_key_is_not_reported(case: Case) -> None:
    u = case.event(time=at(0), action="s3:ListBuckets", credential=KEY, actor=BOT)
    case.uses("ledger-bot", KEY, [u], confidence="inferred")
    case.event(time=at(1), action="s3:ListBuckets", credential="AKIANOBODYSKEY000001")
    [f] = case.findings("long-term-key-used-by-agent")
    assert f.subjects[0] == KEY and "inferred from timing" in f.description


def test_key_created_by_agent_chain_is_its_own_identity(case: Case) -> None:
    # A backdoor key made with an agent's session is not the agent's: its use is unattributed.
    _agent_ref(case, "ledger-bot", "ref-9", 0, human="maria@example.com")
    u = case.event(time=at(0), action="s3:ListBuckets", credential=TMP)
    case.uses("ledger-bot", TMP, [u])
    c = case.event(time=at(1), action="iam:CreateAccessKey", credential=TMP)
    case.issue("AKIABACKDOORKEY00001", "aws-access-key", parent=TMP, event_uid=c, issued_at=at(1))
    out = case.event(
        time=at(9), action="s3:GetObject", credential="AKIABACKDOORKEY00001", src_ip="203.0.113.77"
    )
    rules = {f.rule: f for f in case.findings() if "AKIABACKDOORKEY00001" in f.subjects[:1]}
    assert set(rules) == {"unattributed-actions"} and rules[
        "unattributed-actions"
    ].evidence_uids == (out,)


def test_vault_token_without_ttl_and_with_long_ttl(case: Case) -> None:
    _vault(case, "read", "acc-root", 0, raw={"auth": {"token_ttl": 0, "policies": ["ops"]}})
    _vault(case, "read", "acc-short", 1, raw={"auth": {"token_ttl": 3600}})
    u = _vault(case, "create", "acc-short", 2)
    case.issue(
        "acc-long",
        "vault-token",
        parent="acc-short",
        event_uid=u,
        issued_at=at(2),
        expires_at=at(2, hours=72),
    )
    found = {f.subjects[0]: f for f in case.findings("vault-token-long-ttl")}
    assert set(found) == {"acc-root", "acc-long"}
    assert (
        found["acc-root"].level is Level.HIGH and "never expires" in found["acc-root"].description
    )
    assert found["acc-long"].level is Level.MEDIUM
    assert "vault token revoke -accessor acc-long" in found["acc-long"].recommendation


def test_credential_active_too_long(case: Case) -> None:
    _agent_ref(case, "agent-a", "ref-long", 0)
    _agent_ref(case, "agent-a", "ref-long", 0 + 60 * 24 * 10)
    _agent_ref(case, "agent-a", "ref-short", 0)
    _agent_ref(case, "agent-a", "ref-short", 60 * 24 * 2)
    [f] = case.findings("credential-active-too-long")
    assert f.subjects[0] == "ref-long" and f.details["active_hours"] == 240.0


# -- NHI1 offboarding -----------------------------------------------------------------------------
def test_agent_active_after_retirement(case: Case) -> None:
    case.agent("agent-old", retired=at(0, days=1))
    case.agent("agent-new")
    _agent_ref(case, "agent-old", "ref-1", 10)
    late = _agent_ref(case, "agent-old", "ref-1", 60 * 30)
    _agent_ref(case, "agent-new", "ref-2", 60 * 30)
    [f] = case.findings("agent-active-after-retirement")
    assert f.evidence_uids == (late,) and f.level is Level.CRITICAL and "NHI1:2025" in f.frameworks


def test_credential_used_after_agent_retired(case: Case) -> None:
    case.agent("agent-old", retired=at(0, days=1), identities=[KEY])
    u = case.event(time=at(0), action="s3:GetObject", credential=KEY)
    case.uses("agent-old", KEY, [u], confidence="strong")
    late = case.event(
        time=at(0, days=2), action="s3:GetObject", credential=KEY, src_ip="203.0.113.9"
    )
    [f] = case.findings("credential-used-after-agent-retired")
    assert f.subjects == (KEY, "agent-old") and f.evidence_uids == (late,)


def test_nothing_after_retirement_is_quiet(case: Case) -> None:
    case.agent("agent-old", retired=at(0, days=1))
    _agent_ref(case, "agent-old", "ref-1", 10)
    assert case.findings("agent-active-after-retirement") == []
    assert case.findings("credential-used-after-agent-retired") == []


def test_orphan_credential_needs_inventory_and_no_owner(tmp_path: Path) -> None:
    case = Case(tmp_path / "a.duckdb")
    case.agent("agent-a")
    u = case.event(time=at(0), action="s3:GetObject", credential=KEY)
    case.uses("agent-a", KEY, [u])
    case.event(time=at(1), action="s3:GetObject", credential="AKIAORPHANKEY0000001")
    [f] = case.findings("orphan-credential")
    assert f.subjects[0] == "AKIAORPHANKEY0000001"
    no_inventory = Case(tmp_path / "b.duckdb")
    no_inventory.event(time=at(1), action="s3:GetObject", credential="AKIAORPHANKEY0000001")
    assert no_inventory.findings("orphan-credential") == []


def test_unregistered_agent(case: Case) -> None:
    case.agent("agent-a", name="Ledger reconciler")
    _agent_ref(case, "Ledger reconciler", "ref-1", 0)
    _agent_ref(case, "shadow-agent", "ref-2", 0)
    [f] = case.findings("unregistered-agent")
    assert f.subjects == ("shadow-agent",)


# -- NHI10 human use ----------------------------------------------------------------------------------
def test_console_login_as_agent(case: Case) -> None:
    u = case.event(time=at(0), action="s3:GetObject", credential=KEY, actor=BOT)
    case.uses("ledger-bot", KEY, [u])
    login = case.event(time=at(5), action="signin:ConsoleLogin", actor=BOT, src_ip="198.51.100.1")
    case.event(
        time=at(6), action="signin:ConsoleLogin", actor="arn:aws:iam::111111111111:user/alice"
    )
    [f] = case.findings("console-login-as-agent")
    assert f.evidence_uids == (login,) and "ledger-bot" in f.subjects


def test_console_login_matches_inventory_role(case: Case) -> None:
    case.agent("deployer", identities=["arn:aws:iam::111111111111:role/service/deployer-role"])
    login = case.event(
        time=at(5),
        action="signin:ConsoleLogin",
        actor="arn:aws:sts::111111111111:assumed-role/deployer-role/mallory",
    )
    [f] = case.findings("console-login-as-agent")
    assert f.evidence_uids == (login,)


def test_browser_and_interactive_use_of_agent_credential(case: Case) -> None:
    u = case.event(time=at(0), action="s3:GetObject", credential=KEY, user_agent="Boto3/1.34 agent")
    case.uses("ledger-bot", KEY, [u])
    b = case.event(
        time=at(1),
        action="s3:ListBuckets",
        credential=KEY,
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/120",
    )
    c = case.event(
        time=at(2), action="s3:ListBuckets", credential=KEY, user_agent="aws-cli/2.15.0 Python/3.11"
    )
    case.event(
        time=at(2),
        action="s3:ListBuckets",
        credential="AKIANOTANAGENTKEY001",
        user_agent="aws-cli/2.15",
    )
    found = {f.rule: f for f in case.findings() if f.rule.endswith("on-agent-credential")}
    assert found["browser-on-agent-credential"].evidence_uids == (b,)
    assert found["interactive-tool-on-agent-credential"].evidence_uids == (c,)
    assert found["interactive-tool-on-agent-credential"].level is Level.LOW


def test_browser_on_an_iam_users_console_session_says_how_to_end_it(case: Case) -> None:
    u = case.event(time=at(0), action="s3:GetObject", credential=KEY, actor=BOT)
    case.uses("ledger-bot", KEY, [u])
    case.event(time=at(1), action="signin:ConsoleLogin", actor=BOT)
    b = case.event(
        time=at(2),
        action="s3:ListBuckets",
        credential=TMP,
        actor=BOT,
        user_agent="Mozilla/5.0 (Macintosh) Chrome/133.0",
        raw={"sessionCredentialFromConsole": "true"},
    )
    case.uses("ledger-bot", TMP, [b], confidence="inferred")
    [f] = case.findings("browser-on-agent-credential")
    assert f.evidence_uids == (b,)
    assert "session of IAM user ledger-bot" in f.recommendation
    assert "aws iam delete-login-profile --user-name ledger-bot" in f.recommendation
    assert "aws iam list-access-keys --user-name ledger-bot" in f.recommendation
    assert "role" not in f.recommendation


def test_interactive_tool_on_a_key_minted_in_an_agents_chain(case: Case) -> None:
    u = case.event(time=at(0), action="s3:GetObject", credential=TMP)
    case.uses("ledger-bot", TMP, [u])
    mint = case.event(time=at(1), action="iam:CreateAccessKey", credential=TMP)
    case.issue(
        "AKIABACKDOORKEY00001",
        "aws-access-key",
        parent=TMP,
        event_uid=mint,
        issued_at=at(1),
        principal="arn:aws:iam::111111111111:user/backdoor",
    )
    cli = case.event(
        time=at(5),
        action="s3:ListBuckets",
        credential="AKIABACKDOORKEY00001",
        user_agent="aws-cli/2.15.30 Python/3.11.8",
        src_ip="203.0.113.77",
    )
    # the same tool on a key nobody's agent minted is no NHI10 finding
    case.event(
        time=at(5),
        action="s3:ListBuckets",
        credential="AKIASOMEONESKEY00001",
        user_agent="aws-cli/2.15",
    )
    [f] = case.findings("interactive-tool-on-agent-credential")
    assert f.evidence_uids == (cli,) and f.subjects == ("AKIABACKDOORKEY00001", "ledger-bot", TMP)
    assert f"minted by {TMP}" in f.description and "from 203.0.113.77" in f.description


# -- NHI5 / NHI4 privilege ---------------------------------------------------------------------------
def test_long_term_credential_minted(case: Case) -> None:
    u = case.event(time=at(0), action="iam:CreateAccessKey", credential=TMP)
    case.issue(
        "AKIABACKDOORKEY00001",
        "aws-access-key",
        parent=TMP,
        event_uid=u,
        issued_at=at(0),
        principal="arn:aws:iam::111111111111:user/backdoor",
    )
    v = case.event(time=at(1), action="sts:AssumeRole", credential=KEY)
    case.issue(
        "ASIANEWSESSION000001", "aws-temporary-key", parent=KEY, event_uid=v, issued_at=at(1)
    )
    [f] = case.findings("long-term-credential-minted")
    assert f.subjects[:2] == (TMP, "AKIABACKDOORKEY00001") and f.evidence_uids == (u,)
    assert "--user-name backdoor --access-key-id AKIABACKDOORKEY00001" in f.recommendation


def test_key_made_by_create_access_key_and_handed_out_by_a_vault_lease_is_one_finding(
    case: Case,
) -> None:
    engine, lease, key = (
        "AKIAVAULTENGINEKEY01",
        "aws/creds/exporter/LEASE01",
        "AKIAEXPORTERKEY00001",
    )
    u = case.event(time=at(0), action="iam:CreateAccessKey", credential=engine)
    case.issue(
        key,
        "aws-access-key",
        parent=engine,
        event_uid=u,
        issued_at=at(0),
        principal="arn:aws:iam::111111111111:user/vault-exporter",
    )
    v = case.event(time=at(0.01), action="vault:read", source="vault", credential="hmac-sha256:aa")
    case.issue(key, "aws-access-key", parent=lease, event_uid=v, issued_at=at(0.01))
    [f] = case.findings("long-term-credential-minted")
    assert f.subjects[:2] == (engine, key) and lease in f.subjects and f.evidence_uids == (u, v)
    assert "handed out as " + lease in f.description and lease in f.recommendation


def test_key_known_only_from_a_vault_lease_names_the_lease(case: Case) -> None:
    v = case.event(time=at(0), action="vault:read", source="vault", credential="hmac-sha256:aa")
    case.issue(
        "AKIAEXPORTERKEY00001",
        "aws-access-key",
        parent="aws/creds/x/L1",
        event_uid=v,
        issued_at=at(0),
    )
    [f] = case.findings("long-term-credential-minted")
    assert (
        f.subjects[:2] == ("aws/creds/x/L1", "AKIAEXPORTERKEY00001")
        and "handed out" not in f.description
    )


def test_vault_token_with_other_policies(case: Case) -> None:
    u = _vault(
        case,
        "update",
        "acc-agent",
        0,
        raw={
            "auth": {"policies": ["default", "agent"]},
            "response": {
                "auth": {"accessor": "acc-child", "policies": ["agent", "admin", "default"]}
            },
        },
    )
    case.issue("acc-child", "vault-token", parent="acc-agent", event_uid=u, issued_at=at(0))
    v = _vault(
        case,
        "update",
        "acc-agent",
        1,
        raw={
            "auth": {"policies": ["default", "agent"]},
            "response": {"auth": {"accessor": "acc-child2", "policies": ["agent", "default"]}},
        },
    )
    case.issue("acc-child2", "vault-token", parent="acc-agent", event_uid=v, issued_at=at(1))
    [f] = case.findings("vault-token-with-other-policies")
    assert f.details["new_policies"] == ["admin"] and f.evidence_uids == (u,)


def test_vault_token_policies_with_a_null_in_the_log(case: Case) -> None:
    # A hostile audit log's policy list holding a null: the finding reads the other names
    # (the null once reached the text's join and failed every finding of the snapshot).
    u = _vault(
        case,
        "update",
        "acc-agent",
        0,
        raw={
            "auth": {"policies": ["agent", None]},
            "response": {"auth": {"accessor": "acc-child", "policies": ["admin", None]}},
        },
    )
    case.issue("acc-child", "vault-token", parent="acc-agent", event_uid=u, issued_at=at(0))
    [f] = case.findings("vault-token-with-other-policies")
    assert f.details["new_policies"] == ["admin"] and "(policies agent)" in f.description


def test_iam_change(case: Case) -> None:
    u = case.event(time=at(0), action="iam:AttachUserPolicy", credential=KEY)
    case.uses("ledger-bot", KEY, [u])
    case.event(time=at(1), action="iam:CreateUser", credential=KEY, outcome="denied")
    case.event(time=at(2), action="iam:GetUser", credential=KEY)
    case.event(
        time=at(3),
        action="vault:update",
        source="vault",
        credential="acc-x",
        kind="vault-token",
        target="vault:sys/policies/acl/admin",
    )
    case.event(
        time=at(4),
        action="vault:update",
        source="vault",
        credential="acc-x",
        kind="vault-token",
        target="vault:secret/data/app",
    )
    found = {f.subjects[0]: f for f in case.findings("iam-or-policy-change")}
    assert set(found) == {KEY, "acc-x"}
    assert found[KEY].evidence_uids == (u,) and found[KEY].level is Level.HIGH
    assert found["acc-x"].level is Level.MEDIUM  # no agent known to hold it: one level lower


def test_admin_and_root_use(case: Case) -> None:
    r = case.event(
        time=at(0),
        action="s3:ListBuckets",
        credential="AKIAROOTKEY000000001",
        actor_type="Root",
        actor="arn:aws:iam::111111111111:root",
    )
    v = case.event(
        time=at(1),
        action="vault:read",
        source="vault",
        credential="acc-root",
        kind="vault-token",
        raw={"auth": {"policies": ["root"]}},
    )
    a = case.event(
        time=at(2),
        action="s3:ListBuckets",
        credential=TMP,
        actor="arn:aws:sts::111111111111:assumed-role/OpsAdmin/session",
    )
    case.event(
        time=at(3),
        action="s3:ListBuckets",
        credential="ASIAPLAINROLE0000001",
        actor="arn:aws:sts::111111111111:assumed-role/reader/session",
    )
    case.event(
        time=at(4),
        action="vault:read",
        source="vault",
        credential="acc-app",
        kind="vault-token",
        raw={"auth": {"policies": ["app", "default"]}},
    )
    found = {f.evidence_uids[0]: f for f in case.findings("admin-or-root-use")}
    assert set(found) == {r, v, a}
    assert found[r].level is Level.CRITICAL and found[v].level is Level.CRITICAL
    assert found[a].level is Level.HIGH


# -- NHI8 environment crossing ------------------------------------------------------------------------
def _two_accounts(case: Case) -> None:
    for i, (child, acct) in enumerate(
        [("ASIACHILDONE00000001", "111111111111"), ("ASIACHILDTWO00000001", "222222222222")]
    ):
        u = case.event(
            time=at(i),
            action="sts:AssumeRole",
            credential=KEY,
            account="111111111111",
            resources=[(f"arn:aws:iam::{acct}:role/reader", "AWS::IAM::Role", acct)],
        )
        case.issue(child, "aws-temporary-key", parent=KEY, event_uid=u, issued_at=at(i))
        case.event(time=at(i + 1), action="s3:GetObject", credential=child, account=acct)


def test_environment_crossing(case: Case) -> None:
    _two_accounts(case)
    case.event(
        time=at(0),
        action="vault:read",
        source="vault",
        credential="acc-1",
        kind="vault-token",
        account="root",
    )
    # Only the key that crossed is reported, not the children that each stayed in one account.
    [f] = case.findings("environment-crossing")
    assert f.subjects[0] == KEY and f.details["accounts"] == ["111111111111", "222222222222"]


def test_environment_crossing_counts_an_event_once_per_account(case: Case) -> None:
    """An event counts once in its own account and once in each other account its resources
    belong to, however many resources it names there (the rule counts only resources in other
    accounts than the event's own one by distinct event)."""
    a, b = "111111111111", "222222222222"
    role = "AWS::IAM::Role"
    case.event(
        time=at(0),
        action="iam:GetRole",
        credential=KEY,
        account=a,
        resources=[
            (f"arn:aws:iam::{b}:role/one", role, b),
            (f"arn:aws:iam::{b}:role/two", role, b),
            (f"arn:aws:iam::{a}:role/home", role, a),
        ],
    )
    case.event(time=at(1), action="iam:GetRole", credential=KEY, account=a)
    case.event(  # no account of its own: only its resource's
        time=at(2),
        action="iam:GetRole",
        credential=KEY,
        resources=[(f"arn:aws:iam::{b}:role/three", role, b)],
    )
    [f] = case.findings("environment-crossing")
    assert f.details["accounts"] == [a, b]
    assert f.evidence_count == 4  # a: the first two events; b: the first and the third


def test_environment_labels(tmp_path: Path) -> None:
    same = tmp_path / "same.toml"
    same.write_text(
        '[environment_crossing]\nenvironments = {"111111111111" = "prod", "222222222222" = "prod"}\n'
    )
    mixed = tmp_path / "mixed.toml"
    mixed.write_text(
        '[environment_crossing]\nenvironments = {"111111111111" = "prod", "222222222222" = "dev"}\n'
    )
    case = Case(tmp_path / "c.duckdb")
    _two_accounts(case)
    assert case.findings("environment-crossing", config=same) == []
    [f] = case.findings("environment-crossing", config=mixed)
    assert f.level is Level.HIGH and f.details["environments"] == ["dev", "prod"]


# -- ASI03 attribution ----------------------------------------------------------------------------------
def test_unattributed_actions(case: Case) -> None:
    _agent_ref(case, "agent-a", "ref-1", 0, human="alice@example.com")
    u = case.event(time=at(1), action="s3:GetObject", credential=KEY)
    case.event(time=at(2), action="s3:GetObject", credential=TMP, human="bob@example.com")
    [f] = case.findings("unattributed-actions")
    assert f.subjects[0] == KEY and f.evidence_uids == (u,)


def test_unattributed_needs_agent_evidence(case: Case) -> None:
    case.event(time=at(1), action="s3:GetObject", credential=KEY)
    assert case.findings("unattributed-actions") == []


def test_agent_actions_without_human(case: Case) -> None:
    u = _agent_ref(case, "agent-a", "ref-1", 0)
    _agent_ref(case, "agent-b", "ref-2", 0)
    case.link("DELEGATED", "human", "alice@example.com", "agent", "agent-b", [u])
    [f] = case.findings("agent-actions-without-human")
    assert f.subjects == ("agent-a",)


# -- drift --------------------------------------------------------------------------------------------------
def _drift_case(case: Case) -> str:
    case.routine(KEY)
    return case.event(
        time=at(0, days=9),
        action="iam:CreateUser",
        credential=KEY,
        src_ip="203.0.113.50",
        resources=[("arn:aws:iam::111111111111:user/x", "AWS::IAM::User")],
    )


def test_scope_drift(case: Case) -> None:
    new = _drift_case(case)
    [f] = case.findings("scope-drift")
    assert f.subjects == (KEY,) and f.evidence_uids[0] == new and f.level is Level.MEDIUM
    dep = f.details["departed"]
    assert dep["services"] == ["iam"] and dep["actions"] == ["iam:CreateUser"]
    assert dep["source_networks"] == ["203.0.113.0/24"] and dep["resource_types"] == [
        "AWS::IAM::User"
    ]


def test_no_drift_within_baseline(case: Case) -> None:
    _drift_case(case)
    case.close()
    # A baseline that ends after the last event leaves nothing to depart.
    assert case.findings("scope-drift", baseline_until="2024-06-01T00:00:00Z") == []


def test_thin_baseline_is_not_judged(case: Case) -> None:
    case.event(time=at(0), action="s3:GetObject", credential=KEY)
    case.event(time=at(0, days=9), action="iam:CreateUser", credential=KEY)
    assert case.findings("scope-drift") == []


# -- reconnaissance and sprawl --------------------------------------------------------------------------------
def test_denied_burst(case: Case) -> None:
    actions = ["iam:ListUsers", "s3:ListBuckets", "ec2:DescribeInstances", "lambda:ListFunctions"]
    for i in range(12):
        case.event(time=at(i * 0.5), action=actions[i % 4], credential=TMP, outcome="denied")
    for i in range(12):  # the same call retried, spread out: not probing
        case.event(time=at(i * 30), action="s3:GetObject", credential=KEY, outcome="denied")
    [f] = case.findings("denied-burst")
    assert f.subjects == (TMP,) and f.evidence_count == 12 and len(f.details["actions"]) == 4


def test_secret_sprawl(case: Case) -> None:
    _reads(case, "acc-1", 10, "vault:secret/data/app", "vault-secret")
    _reads(case, "acc-2", 9, "vault:secret/data/app", "vault-secret")
    _reads(case, "acc-2", 5, "vault:sys/mounts/m", "vault-path")
    [f] = case.findings("secret-sprawl")
    assert f.subjects[0] == "acc-1" and len(f.evidence) == 10


# -- contract ----------------------------------------------------------------------------------------------------
def test_min_level_and_level_override(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[levels]\n"credential-shared-by-agents" = "low"\n')
    case = Case(tmp_path / "c.duckdb")
    _agent_ref(case, "agent-a", "ref-1", 0)
    _agent_ref(case, "agent-b", "ref-1", 5)
    assert [f.rule for f in case.findings(min_level="medium")] == ["credential-shared-by-agents"]
    assert case.findings("credential-shared-by-agents", config=cfg)[0].level is Level.LOW
    keys = set(case.findings()[0].as_dict())
    assert {
        "rule",
        "title",
        "level",
        "frameworks",
        "subjects",
        "evidence",
        "description",
        "recommendation",
        "impact",
        "first_seen",
        "last_seen",
    } <= keys


def test_disabled_family_emits_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[credential_reuse]\nenabled = false\n")
    case = Case(tmp_path / "c.duckdb")
    _agent_ref(case, "agent-a", "ref-1", 0)
    _agent_ref(case, "agent-b", "ref-1", 5)
    assert case.findings("credential-shared-by-agents", config=cfg) == []
    assert default_config().credential_reuse.enabled


def test_retired_agent_on_shared_key_counts_only_its_own_calls(case: Case) -> None:
    case.agent("vendor-sync", retired=at(0, days=1))
    case.agent("invoice-triage")
    u = case.event(time=at(0), action="s3:GetObject", credential=KEY)
    case.uses("vendor-sync", KEY, [u])
    case.uses("invoice-triage", KEY, [u])
    own = _agent_ref(case, "vendor-sync", KEY, 60 * 24 * 3)
    near = case.event(time=at(60 * 24 * 3 + 1), action="s3:PutObject", credential=KEY)
    case.event(
        time=at(60 * 24 * 3 + 30), action="s3:GetObject", credential=KEY
    )  # invoice-triage's day
    [f] = case.findings("agent-active-after-retirement")
    assert f.evidence_uids == (own, near)
    # The shared key was not rotated at retirement: its calls next to the retired agent's own
    # actions are the finding; invoice-triage's daily use of it is not.
    [c] = case.findings("credential-used-after-agent-retired")
    assert c.evidence_uids == (near,) and c.subjects == (KEY, "vendor-sync", "invoice-triage")
    assert "also held by active agent(s) invoice-triage" in c.description


def test_shared_key_of_a_retired_agent_that_stopped_is_quiet(case: Case) -> None:
    case.agent("vendor-sync", retired=at(0, days=1))
    case.agent("invoice-triage")
    u = case.event(time=at(0), action="s3:GetObject", credential=KEY)
    case.uses("vendor-sync", KEY, [u])
    case.uses("invoice-triage", KEY, [u])
    _agent_ref(case, "invoice-triage", KEY, 60 * 24 * 3)
    case.event(time=at(60 * 24 * 3 + 1), action="s3:GetObject", credential=KEY)
    assert case.findings("credential-used-after-agent-retired") == []


def test_people_in_their_own_sessions_are_not_nhi_privilege_findings(case: Case) -> None:
    sso = "arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_AdministratorAccess_0a1b/j.park@example.com"
    case.event(time=at(0), action="iam:CreateLoginProfile", credential=TMP, actor=sso)
    root = case.event(
        time=at(1),
        action="s3:ListBuckets",
        credential="ASIAROOTSESSION00001",
        actor_type="Root",
        actor="arn:aws:iam::111111111111:root",
        human="admin@example.com",
    )
    assert case.findings("iam-or-policy-change") == []
    [f] = case.findings("admin-or-root-use")
    assert f.evidence_uids == (root,)


# -- request fields read from `details` ----------------------------------------------------------
def test_s3_mass_delete_and_sse_c_read_the_request_from_details(case: Case) -> None:
    for i in range(20):  # 20 deletes in 10 minutes: the default threshold
        case.event(
            time=at(i * 0.4),
            action="s3:DeleteObject",
            credential=TMP,
            raw={"requestParameters": {"bucketName": "ledger-data", "key": f"k{i}"}},
        )
    for i in range(20):  # 20 plain uploads: not re-encryption, nothing to report
        case.event(
            time=at(30 + i * 0.4),
            action="s3:PutObject",
            credential=TMP,
            raw={"requestParameters": {"bucketName": "ledger-data", "key": f"p{i}"}},
        )
    for i in range(20):  # 20 uploads with a customer key (SSE-C): ransomware's re-encryption
        case.event(
            time=at(60 + i * 0.4),
            action="s3:PutObject",
            credential=TMP,
            raw={
                "requestParameters": {
                    "bucketName": "ledger-logs",
                    "x-amz-server-side-encryption-customer-algorithm": "AES256",
                }
            },
        )
    found = {f.details["verb"]: f for f in case.findings("nhi-s3-mass-delete-or-encrypt")}
    assert set(found) == {"deleted", "re-encrypted with SSE-C"}
    assert found["deleted"].details["buckets"] == ["ledger-data"]
    assert found["deleted"].evidence_count == 20
    assert found["re-encrypted with SSE-C"].details["buckets"] == ["ledger-logs"]
    assert found["re-encrypted with SSE-C"].evidence_count == 20


def test_secret_bulk_read_counts_ssm_reads_only_with_decryption(case: Case) -> None:
    for i in range(30):
        case.event(
            time=at(i * 0.2),
            action="ssm:GetParameter",
            credential=TMP,
            raw={"requestParameters": {"name": f"/app/p{i}", "withDecryption": i % 2 == 0}},
        )
    [f] = case.findings("nhi-secret-bulk-read")
    assert f.evidence_count == 15  # the 15 decrypted reads, not the 15 others


def test_ranking_counts_ssm_reads_as_secrets_only_with_decryption(case: Case) -> None:
    """The ranking reads ``details`` only for ``ssm:GetParameter*`` events (ranking._ev_rows):
    the decrypted reads are its secret reads, in the snapshot's query and the one-root one."""
    from keytrail.analysis.blast_detail import blast_radius
    from keytrail.analysis.ranking import rank_query_rows, rank_query_table
    from keytrail.store.case import CaseStore

    for i in range(6):
        case.event(
            time=at(i),
            action="ssm:GetParameters" if i % 3 else "ssm:GetParameter",
            credential=TMP,
            raw={"requestParameters": {"names": [f"/app/p{i}"], "withDecryption": i < 4}},
        )
    case.event(time=at(9), action="s3:GetObject", credential=TMP, raw={"withDecryption": True})
    case.store.con.execute(
        "INSERT INTO credentials (credential_id, kind) VALUES (?, 'aws-temporary-key')", [TMP]
    )
    with CaseStore.open(case.close()) as store:
        [row] = rank_query_rows(store)
        assert (row["credential_id"], row["events"], row["secrets_read"]) == (TMP, 7, 4)
        assert rank_query_table(store).to_pylist()[0]["secrets_read"] == 4
        assert blast_radius(store, TMP).counts["secrets_read"] == 4
