"""Agent scenarios: real frameworks, stand-in models and real tools on the OpenBao test server.

Each ``run_*`` function writes one scenario's evidence into a folder, the files a responder
would be handed: ``traces.otlp.jsonl`` (the framework's own OpenTelemetry spans, exported by
the real SDK as the Collector's file exporter writes them), ``vault-audit.log`` (what the
server's default file audit device wrote meanwhile), ``mcp-gateway.jsonl`` where MCP is used,
``inventory.toml``, and ``expect.json``: for each Vault or MCP action, the person (or none),
the agent and the AppRole behind the credential that a correct ``keytrail trace`` names.

The model is a stand-in (pydantic-ai's ``FunctionModel``, a scripted LangChain chat model):
it decides which tool to call from a fixed script, so runs are offline and repeatable; the
agent framework, its instrumentation, the tools and the server are the real ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.agents import vault_tools
from tests.agents.otel_files import JaegerJsonExporter, OtlpJsonLinesExporter
from tests.openbao import OpenBao

try:  # module level: pydantic-ai reads the tool's annotations by name (get_type_hints)
    from pydantic_ai import RunContext
except ImportError:  # the live tests skip; the fixture tests never import this module
    RunContext = None  # type: ignore[assignment,misc]

SECRETS = {
    f"payroll/{m}": {"db_user": f"payroll-{m}", "db_password": f"pw-{m}"}
    for m in ("2025-09", "2025-10", "2025-11", "2025-12")
}


@dataclass
class Expect:
    """What ``keytrail trace`` must say about one action."""

    source: str  # vault | mcp
    target: str  # the event's target (vault:secret/data/... , the MCP tool target) or 'login'
    human: str | None  # None: the trace must name no person
    agent: str | None  # inventory id of the agent; None: no agent expected
    role: str | None = None  # AppRole role whose login issued the chain's root credential
    via_agent: str | None = None  # the agent that handed the work to ``agent`` (delegation)


@dataclass
class Scenario:
    name: str
    folder: Path
    expects: list[Expect] = field(default_factory=list)
    inventory: list[dict[str, Any]] = field(default_factory=list)

    def write(self, bao: OpenBao, mark: dict[str, int]) -> None:
        (self.folder / "vault-audit.log").write_bytes(bao.audit_since(mark, "default"))
        lines = []
        for agent in self.inventory:
            lines.append("[[agents]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in agent.items()]
            lines.append("")
        (self.folder / "inventory.toml").write_text("\n".join(lines))
        (self.folder / "expect.json").write_text(
            json.dumps(
                {"scenario": self.name, "expects": [asdict(e) for e in self.expects]}, indent=1
            )
            + "\n"
        )


# -- OpenTelemetry plumbing -----------------------------------------------------------------------


@contextmanager
def tracing(folder: Path, service: str) -> Iterator[Any]:
    """A TracerProvider exporting through the real SDK pipeline to ``folder/traces.otlp.jsonl`` (the
    Collector's file exporter) and ``folder/traces.jaeger.json`` (a Jaeger UI download)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        BatchSpanProcessor(OtlpJsonLinesExporter(folder / "traces.otlp.jsonl"))
    )
    provider.add_span_processor(
        BatchSpanProcessor(JaegerJsonExporter(folder / "traces.jaeger.json"))
    )
    try:
        yield provider
    finally:
        provider.shutdown()  # flushes the batch processor


# -- pydantic-ai ----------------------------------------------------------------------------------

Step = Callable[[list[Any]], Any]


def scripted_model(script: list[tuple[str, dict[str, Any]] | str]) -> Any:
    """A FunctionModel that answers the n-th model request with ``script[n]``.

    ``(tool, arguments)`` asks for a tool call; a string is the final text answer. The
    arguments may use ``{prompt_path}``: the ``payroll/...`` path named in the user prompt.
    """
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, UserPromptPart
    from pydantic_ai.models.function import FunctionModel

    def model(messages: list[Any], info: Any) -> Any:
        step = sum(1 for m in messages if isinstance(m, ModelResponse))
        prompt = " ".join(
            str(p.content)
            for m in messages
            for p in getattr(m, "parts", [])
            if isinstance(p, UserPromptPart)
        )
        found = re.search(r"payroll/[\w-]+", prompt)
        path = found.group(0) if found else ""
        what = script[min(step, len(script) - 1)]
        if isinstance(what, str):
            return ModelResponse(parts=[TextPart(what)])
        tool, args = what
        args = {
            k: (v.format(prompt_path=path) if isinstance(v, str) else v) for k, v in args.items()
        }
        return ModelResponse(parts=[ToolCallPart(tool, args)])

    return FunctionModel(model)


def _instrument(agent: Any, provider: Any) -> None:
    from pydantic_ai.models.instrumented import InstrumentationSettings

    agent.instrument = InstrumentationSettings(tracer_provider=provider)


def _vault_agent(
    name: str,
    provider: Any,
    bao: OpenBao,
    token: Callable[[], str],
    script: list[tuple[str, dict[str, Any]] | str],
    *,
    retry_missing: bool = False,
) -> Any:
    """A pydantic-ai agent with one tool, ``read_secret(path)``, reading KV v2 with ``token()``."""
    from pydantic_ai import Agent, ModelRetry

    agent = Agent(scripted_model(script), name=name, retries=2)
    _instrument(agent, provider)

    @agent.tool_plain
    def read_secret(path: str) -> str:
        """Read a payroll secret; answers with the keys it holds."""
        data = vault_tools.read_secret(bao, token(), path)
        if data is None:
            if retry_missing:
                raise ModelRetry(f"no secret at {path}")
            return "not found"
        return "keys: " + ", ".join(sorted(data))

    return agent


def _web_request(provider: Any, route: str, user: str | None) -> Any:
    """The web framework's server span around one request (``enduser.id`` when a person asked)."""
    attrs = {"http.request.method": "POST", "http.route": route}
    if user:
        attrs["enduser.id"] = user
    from opentelemetry.trace import SpanKind

    return provider.get_tracer("payroll-web").start_as_current_span(
        f"POST {route}", attributes=attrs, kind=SpanKind.SERVER
    )


LEDGER = {
    "id": "agt-ledger-1",
    "name": "ledger-reconciler",
    "owner": "team-finance",
    "purpose": "Reconciles payroll ledgers",
    "environment": "test",
}


def run_shared_agent(bao: OpenBao, folder: Path) -> Scenario:
    """Two people and a nightly job use one agent and one token (one AppRole login at start-up)."""
    folder.mkdir(parents=True, exist_ok=True)
    roles = vault_tools.prepare(bao, ["ledger-reconciler"], SECRETS)
    mark = bao.mark()
    token = vault_tools.login(
        bao, roles["ledger-reconciler"]
    )  # the service logs in once when it starts
    with tracing(folder, "payroll-web") as provider:
        agent = _vault_agent(
            "ledger-reconciler",
            provider,
            bao,
            lambda: token,
            [("read_secret", {"path": "{prompt_path}"}), "reconciled"],
        )
        for user, path in (("dana", "payroll/2025-10"), ("omar", "payroll/2025-11")):
            with _web_request(provider, "/reconcile", user):
                agent.run_sync(f"reconcile {path}")
        with provider.get_tracer("scheduler").start_as_current_span(
            "cron nightly-reconcile", attributes={"job.name": "nightly"}
        ):
            agent.run_sync("reconcile payroll/2025-09")
    sc = Scenario(
        "shared-agent",
        folder,
        inventory=[{**LEDGER, "identities": [roles["ledger-reconciler"].identity]}],
    )
    role = "ledger-reconciler"
    sc.expects = [
        Expect("vault", "vault:secret/data/payroll/2025-10", "dana", "agt-ledger-1", role),
        Expect("vault", "vault:secret/data/payroll/2025-11", "omar", "agt-ledger-1", role),
        Expect("vault", "vault:secret/data/payroll/2025-09", None, "agt-ledger-1", role),
        Expect("vault", "login", None, "agt-ledger-1", role),
    ]
    sc.write(bao, mark)
    return sc


def run_handoff(bao: OpenBao, folder: Path) -> Scenario:
    """One person asks a triage agent, which hands the work to a payroll agent (Vault role)."""
    from pydantic_ai import Agent

    folder.mkdir(parents=True, exist_ok=True)
    roles = vault_tools.prepare(bao, ["payroll-clerk"], SECRETS)
    mark = bao.mark()
    with tracing(folder, "helpdesk") as provider:
        clerk = _vault_agent(
            "payroll-clerk",
            provider,
            bao,
            lambda: vault_tools.login(bao, roles["payroll-clerk"]),
            [("read_secret", {"path": "{prompt_path}"}), "the secret holds db_user"],
        )
        triage = Agent(
            scripted_model([("ask_payroll_clerk", {"question": "{prompt_path}"}), "answered"]),
            name="triage-desk",
        )
        _instrument(triage, provider)

        @triage.tool
        async def ask_payroll_clerk(ctx: RunContext[None], question: str) -> str:
            """Hand a payroll question to the payroll clerk agent (pydantic-ai delegation)."""
            return str((await clerk.run(f"look up {question}", usage=ctx.usage)).output)

        with _web_request(provider, "/ask", "dana"):
            triage.run_sync("what is in payroll/2025-10?")
    sc = Scenario(
        "handoff",
        folder,
        inventory=[
            {"id": "agt-triage-1", "name": "triage-desk", "owner": "team-helpdesk"},
            {
                "id": "agt-payroll-2",
                "name": "payroll-clerk",
                "owner": "team-finance",
                "identities": [roles["payroll-clerk"].identity],
            },
        ],
    )
    sc.expects = [
        Expect(
            "vault",
            "vault:secret/data/payroll/2025-10",
            "dana",
            "agt-payroll-2",
            "payroll-clerk",
            via_agent="agt-triage-1",
        ),
        Expect("vault", "login", "dana", "agt-payroll-2", "payroll-clerk"),
    ]
    sc.write(bao, mark)
    return sc


def run_retry(bao: OpenBao, folder: Path) -> Scenario:
    """A tool call fails (no such secret), the model retries with another path; lazy login."""
    folder.mkdir(parents=True, exist_ok=True)
    roles = vault_tools.prepare(bao, ["ledger-reconciler"], SECRETS)
    mark = bao.mark()
    held: list[str] = []

    def token() -> str:
        if not held:
            held.append(vault_tools.login(bao, roles["ledger-reconciler"]))
        return held[0]

    with tracing(folder, "payroll-web") as provider:
        agent = _vault_agent(
            "ledger-reconciler",
            provider,
            bao,
            token,
            [
                ("read_secret", {"path": "payroll/2025-13"}),
                ("read_secret", {"path": "payroll/2025-12"}),
                "reconciled",
            ],
            retry_missing=True,
        )
        with _web_request(provider, "/reconcile", "erin"):
            agent.run_sync("reconcile the latest payroll")
    sc = Scenario(
        "retry", folder, inventory=[{**LEDGER, "identities": [roles["ledger-reconciler"].identity]}]
    )
    role = "ledger-reconciler"
    sc.expects = [
        Expect("vault", "vault:secret/data/payroll/2025-13", "erin", "agt-ledger-1", role),
        Expect("vault", "vault:secret/data/payroll/2025-12", "erin", "agt-ledger-1", role),
        Expect("vault", "login", "erin", "agt-ledger-1", role),
    ]
    sc.write(bao, mark)
    return sc


def run_unknown_tool(bao: OpenBao, folder: Path) -> Scenario:
    """The model asks for a tool the agent was not given, is told so, then uses the one it has."""
    folder.mkdir(parents=True, exist_ok=True)
    roles = vault_tools.prepare(bao, ["ledger-reconciler"], SECRETS)
    mark = bao.mark()
    with tracing(folder, "payroll-web") as provider:
        agent = _vault_agent(
            "ledger-reconciler",
            provider,
            bao,
            lambda: vault_tools.login(bao, roles["ledger-reconciler"]),
            [
                ("export_all_secrets", {"path": "payroll"}),
                ("read_secret", {"path": "{prompt_path}"}),
                "reconciled",
            ],
        )
        with _web_request(provider, "/reconcile", "gus"):
            agent.run_sync("reconcile payroll/2025-10")
    sc = Scenario(
        "unknown-tool",
        folder,
        inventory=[{**LEDGER, "identities": [roles["ledger-reconciler"].identity]}],
    )
    sc.expects = [
        Expect(
            "vault", "vault:secret/data/payroll/2025-10", "gus", "agt-ledger-1", "ledger-reconciler"
        ),
        Expect("vault", "login", "gus", "agt-ledger-1", "ledger-reconciler"),
    ]
    sc.write(bao, mark)
    return sc


REPO = Path(__file__).resolve().parents[2]


def run_mcp(bao: OpenBao, folder: Path) -> Scenario:
    """A person's agent calls an MCP server's tool (through a logging gateway) that reads a secret.

    The MCP server holds its own AppRole; the agent holds none. The gateway logs the JSON-RPC
    messages with the person it authenticated and the client's ``clientInfo`` name.
    """
    import os
    import sys

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.types import Implementation

    folder.mkdir(parents=True, exist_ok=True)
    roles = vault_tools.prepare(bao, ["mcp-vault-tools"], SECRETS)
    mark = bao.mark()
    log = folder / "mcp-gateway.jsonl"
    env = {
        **os.environ,
        "BAO_ADDR": bao.addr,
        "MCP_ROLE_ID": roles["mcp-vault-tools"].role_id,
        "MCP_SECRET_ID": roles["mcp-vault-tools"].secret_id,
        "PYTHONPATH": str(REPO),
    }
    params = StdioServerParameters(
        command=sys.executable,
        cwd=str(REPO),
        env=env,
        args=[
            "-m",
            "tests.agents.mcp_proxy",
            str(log),
            "frank",
            "vault-tools",
            "--",
            sys.executable,
            "-m",
            "tests.agents.mcp_server",
        ],
    )

    with tracing(folder, "payroll-web") as provider:
        from pydantic_ai import Agent

        agent = Agent(
            scripted_model([("read_secret", {"path": "{prompt_path}"}), "reconciled"]),
            name="ledger-reconciler",
        )
        _instrument(agent, provider)

        @agent.tool_plain
        async def read_secret(path: str) -> str:
            """Read a payroll secret through the vault-tools MCP server."""
            async with (
                stdio_client(params) as (read, write),
                ClientSession(
                    read, write, client_info=Implementation(name="ledger-reconciler", version="1.0")
                ) as session,
            ):
                await session.initialize()
                result = await session.call_tool("read_secret", {"path": path})
            return " ".join(getattr(c, "text", "") for c in result.content)

        with _web_request(provider, "/reconcile", "frank"):
            agent.run_sync("reconcile payroll/2025-10")
    sc = Scenario(
        "mcp",
        folder,
        inventory=[
            {**LEDGER},
            {
                "id": "mcp-vault-tools",
                "name": "vault-tools",
                "owner": "team-platform",
                "purpose": "MCP server reading payroll secrets",
                "identities": [roles["mcp-vault-tools"].identity],
            },
        ],
    )
    sc.expects = [
        Expect("mcp", "tools/call", "frank", "agt-ledger-1"),
        Expect(
            "vault",
            "vault:secret/data/payroll/2025-10",
            "frank",
            "mcp-vault-tools",
            "mcp-vault-tools",
            via_agent="agt-ledger-1",
        ),
        Expect(
            "vault",
            "login",
            "frank",
            "mcp-vault-tools",
            "mcp-vault-tools",
            via_agent="agt-ledger-1",
        ),
    ]
    sc.write(bao, mark)
    return sc


# -- LangGraph + OpenInference -------------------------------------------------------------------


def _scripted_chat_model(script: list[tuple[str, dict[str, Any]] | str]) -> Any:
    """A LangChain chat model answering the n-th call with ``script[n]`` (tool call or text)."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class ScriptedChatModel(BaseChatModel):
        calls: int = 0

        @property
        def _llm_type(self) -> str:
            return "scripted"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> ChatResult:
            what = script[min(self.calls, len(script) - 1)]
            self.calls += 1
            if isinstance(what, str):
                msg = AIMessage(content=what)
            else:
                msg = AIMessage(
                    content="",
                    tool_calls=[{"name": what[0], "args": what[1], "id": f"call_{self.calls}"}],
                )
            return ChatResult(generations=[ChatGeneration(message=msg)])

    return ScriptedChatModel()


def _react_graph(model: Any, tools: list[Any], name: str, parts: tuple[Any, ...]) -> Any:
    """The ReAct loop: the model answers or calls a tool; tool results go back to the model."""
    state_graph, messages_state, start, tool_node, tools_condition = parts

    def agent(state: Any) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    workflow = state_graph(messages_state)
    workflow.add_node("agent", agent)
    workflow.add_node("tools", tool_node(tools))
    workflow.add_edge(start, "agent")
    workflow.add_conditional_edges("agent", tools_condition)
    workflow.add_edge("tools", "agent")
    return workflow.compile(name=name)


def run_langgraph(bao: OpenBao, folder: Path) -> Scenario:
    """A LangGraph ReAct agent, traced by OpenInference's LangChain instrumentor, for one person.

    The graph is the ReAct loop written with LangGraph's own parts (``StateGraph``, ``ToolNode``,
    ``tools_condition``): ``langgraph.prebuilt.create_react_agent`` is deprecated in LangGraph 1.x
    for ``langchain.agents.create_agent``, which would pull in the whole ``langchain`` package.
    """
    from langchain_core.tools import tool
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition
    from openinference.instrumentation import using_user
    from openinference.instrumentation.langchain import LangChainInstrumentor

    folder.mkdir(parents=True, exist_ok=True)
    roles = vault_tools.prepare(bao, ["payroll-graph"], SECRETS)
    mark = bao.mark()

    @tool
    def read_secret(path: str) -> str:
        """Read a payroll secret (logging in for the call); answers with the keys it holds."""
        data = vault_tools.read_secret(bao, vault_tools.login(bao, roles["payroll-graph"]), path)
        return "not found" if data is None else "keys: " + ", ".join(sorted(data))

    with tracing(folder, "payroll-graph") as provider:
        instrumentor = LangChainInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            graph = _react_graph(
                _scripted_chat_model([("read_secret", {"path": "payroll/2025-11"}), "done"]),
                [read_secret],
                "payroll-graph",
                (StateGraph, MessagesState, START, ToolNode, tools_condition),
            )
            with _web_request(provider, "/graph", "hana"), using_user("hana"):
                graph.invoke({"messages": [("user", "reconcile payroll/2025-11")]})
        finally:
            instrumentor.uninstrument()
    sc = Scenario(
        "langgraph",
        folder,
        inventory=[
            {
                "id": "agt-graph-3",
                "name": "payroll-graph",
                "owner": "team-finance",
                "identities": [roles["payroll-graph"].identity],
            }
        ],
    )
    sc.expects = [
        Expect(
            "vault", "vault:secret/data/payroll/2025-11", "hana", "agt-graph-3", "payroll-graph"
        ),
        Expect("vault", "login", "hana", "agt-graph-3", "payroll-graph"),
    ]
    sc.write(bao, mark)
    return sc


# -- Strands Agents --------------------------------------------------------------------------------


def _strands_model(script: list[tuple[str, dict[str, Any]] | str]) -> Any:
    """A Strands ``Model`` streaming the n-th answer of ``script`` (ConverseStream events)."""
    from strands.models.model import Model

    class ScriptedStrandsModel(Model):  # type: ignore[misc]
        def __init__(self) -> None:
            self.calls = 0
            self.config: dict[str, Any] = {"model_id": "scripted"}

        def update_config(self, **model_config: Any) -> None:
            self.config.update(model_config)

        def get_config(self) -> Any:
            return self.config

        async def structured_output(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError
            yield  # an async generator, as the interface wants

        async def stream(
            self, messages: Any, tool_specs: Any = None, system_prompt: Any = None, **kwargs: Any
        ) -> Any:
            what = script[min(self.calls, len(script) - 1)]
            self.calls += 1
            yield {"messageStart": {"role": "assistant"}}
            if isinstance(what, str):
                yield {"contentBlockStart": {"start": {}}}
                yield {"contentBlockDelta": {"delta": {"text": what}}}
                stop = "end_turn"
            else:
                yield {
                    "contentBlockStart": {
                        "start": {
                            "toolUse": {"toolUseId": f"tooluse_{self.calls}", "name": what[0]}
                        }
                    }
                }
                yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(what[1])}}}}
                stop = "tool_use"
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": stop}}
            yield {
                "metadata": {
                    "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                    "metrics": {"latencyMs": 1},
                }
            }

    return ScriptedStrandsModel()


def run_strands(bao: OpenBao, folder: Path) -> Scenario:
    """A Strands agent (its own OTel GenAI spans, default conventions) for one person."""
    from strands import Agent, tool
    from strands.telemetry import tracer as strands_tracer

    folder.mkdir(parents=True, exist_ok=True)
    roles = vault_tools.prepare(bao, ["payroll-strands"], SECRETS)
    mark = bao.mark()

    @tool
    def read_secret(path: str) -> str:
        """Read a payroll secret (logging in for the call); answers with the keys it holds."""
        data = vault_tools.read_secret(bao, vault_tools.login(bao, roles["payroll-strands"]), path)
        return "not found" if data is None else "keys: " + ", ".join(sorted(data))

    with tracing(folder, "payroll-api") as provider:
        # Strands traces through the global provider, read once into its tracer singleton; point
        # that singleton at this scenario's provider for the run and put it back after.
        shared = strands_tracer.get_tracer()
        saved = (shared.tracer_provider, shared.tracer)
        shared.tracer_provider, shared.tracer = provider, provider.get_tracer(shared.service_name)
        try:
            agent = Agent(
                model=_strands_model([("read_secret", {"path": "payroll/2025-12"}), "done"]),
                tools=[read_secret],
                name="payroll-strands",
                callback_handler=None,
                trace_attributes={"user.id": "ivan", "session.id": "strands-session-1"},
            )
            agent("reconcile payroll/2025-12")
        finally:
            shared.tracer_provider, shared.tracer = saved
    sc = Scenario(
        "strands",
        folder,
        inventory=[
            {
                "id": "agt-strands-4",
                "name": "payroll-strands",
                "owner": "team-finance",
                "identities": [roles["payroll-strands"].identity],
            }
        ],
    )
    sc.expects = [
        Expect(
            "vault", "vault:secret/data/payroll/2025-12", "ivan", "agt-strands-4", "payroll-strands"
        ),
        Expect("vault", "login", "ivan", "agt-strands-4", "payroll-strands"),
    ]
    sc.write(bao, mark)
    return sc


#: Every scenario, by the folder name its evidence is written under.
SCENARIOS: dict[str, Callable[[OpenBao, Path], Scenario]] = {
    "shared-agent": run_shared_agent,
    "handoff": run_handoff,
    "retry": run_retry,
    "unknown-tool": run_unknown_tool,
    "mcp": run_mcp,
    "langgraph": run_langgraph,
    "strands": run_strands,
}
