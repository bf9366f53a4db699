"""Credentials ranked by blast radius, and one credential opened.

The ranking and the blast radius are :func:`keytrail.analysis.blast_radius.rank_credentials`
and :func:`~keytrail.analysis.blast_radius.blast_radius` (their ``--json`` documents);
lineage, linked identities and activity come from the derived ``credentials``,
``links`` and ``events`` tables. Without the blast-radius module the list falls back
to the ``credentials`` table ordered by event count and says so.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Input, Label, Sparkline, Static, TabbedContent, TabPane, Tree

from keytrail.tui import core
from keytrail.tui.messages import Loaded
from keytrail.tui.queries import TABLE_CAP, activity, credential_lineage, linked_identities
from keytrail.tui.screens.base import CaseScreen
from keytrail.tui.widgets.doc_view import DocTable, DocView
from keytrail.tui.widgets.text import fmt, lit


def _fallback_rank(cur: Any) -> list[dict[str, Any]]:
    rel = cur.execute(
        "SELECT credential_id, kind, origin, events, first_seen, last_seen, principal_uid FROM credentials "
        "ORDER BY events DESC NULLS LAST, credential_id LIMIT ?", [TABLE_CAP])
    names = [d[0] for d in rel.description or []]
    return [dict(zip(names, r)) for r in rel.fetchall()]


class CredentialsScreen(CaseScreen):
    TITLE = "Credentials"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("slash", "focus_filter", "Filter", id="credentials.filter")]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        yield Input(id="filter", placeholder="filter credentials (id, kind, principal…)")
        yield VerticalScroll(id="list")
        yield Static(id="status")

    def on_mount(self) -> None:
        rank = core.engine(core.RANK)
        if rank is None:
            self.load("rows", lambda cur: ("fallback", _fallback_rank(cur)))
        else:
            self.load("rows", lambda cur: ("ranked", core.as_doc(rank(self.store))))
        self.status(Text("ranking… (Escape cancels)", style="dim"))

    def on_loaded(self, message: Loaded) -> None:
        how, self.rows = message.data
        self._how = how
        self._fill("")

    def _fill(self, text: str) -> None:
        needle = text.lower()
        rows = [r for r in self.rows if not needle or needle in " ".join(fmt(v) for v in r.values()).lower()]
        tables = self.query("#creds").results(DocTable)
        table = next(tables, None)
        if table is None:
            table = DocTable("credentials", rows, id="creds")
            self.query_one("#list", VerticalScroll).mount(table)
            table.focus()
        else:
            table.set_rows(rows)
        note = "" if self._how == "ranked" else \
            f"  ·  not ranked: {core.RANK[0]} is not in this build (listed by event count)"
        cap = f" (first {TABLE_CAP:,})" if len(rows) >= TABLE_CAP else ""
        self.status(Text(f"{len(rows):,} of {len(self.rows):,} credentials{cap}  ·  Enter opens{note}"))

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.rows:
            self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        for t in self.query(DocTable):
            t.focus()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()


class CredentialScreen(CaseScreen):
    """One credential: blast radius (with score terms), lineage, identities, activity."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "timeline", "Its events", id="credential.timeline"),
        Binding("e", "export", "Export report", id="credential.export"),
    ]

    def __init__(self, credential_id: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.credential_id = credential_id

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        yield Label(Text("credential ", style="bold") + lit(self.credential_id, 200), id="head")
        with TabbedContent():
            with TabPane("Blast radius", id="tab-blast"):
                yield VerticalScroll(Static(Text("computing… (Escape cancels)", style="dim")), id="blast")
            with TabPane("Lineage", id="tab-lineage"):
                yield Tree(Text("lineage"), id="lineage")
            with TabPane("Agents & humans", id="tab-ids"):
                yield DataTable(id="ids", cursor_type="row")
            with TabPane("Activity", id="tab-activity"):
                yield Sparkline([], id="spark")
                yield Static(id="activity")
        yield Static(id="status")

    def on_mount(self) -> None:
        self.sub_title = self.credential_id
        cid = self.credential_id
        blast = core.engine(core.BLAST)
        if blast is None:
            self._blast_unavailable()
        else:
            self.load("blast", lambda cur: core.as_doc(blast(self.store, cid)))
        self.load("lineage", lambda cur: credential_lineage(cur, cid))
        self.load("ids", lambda cur: linked_identities(cur, cid))
        self.load("activity", lambda cur: activity(cur, "credential_id", cid))
        export = "e exports a report" if core.engine(core.REPORT) else \
            f"export unavailable ({core.REPORT[0]} not in this build)"
        self.status(Text(f"t its events · {export} · Escape back"))

    def _blast_unavailable(self) -> None:
        box = self.query_one("#blast", VerticalScroll)
        box.remove_children()
        box.mount(Static(Text(f"unavailable: {core.BLAST[0]} is not in this build", style="dim")))

    def on_loaded(self, message: Loaded) -> None:
        data = message.data
        if message.key == "blast":
            box = self.query_one("#blast", VerticalScroll)
            box.remove_children()
            box.mount(DocView(data))
        elif message.key == "lineage":
            self._show_lineage(data)
        elif message.key == "ids":
            table = self.query_one("#ids", DataTable)
            table.clear(columns=True)
            table.add_columns("dir", "edge", "kind", "id", "confidence", "reason", "events")
            for row in data:
                table.add_row(*[lit(v, 80) for v in row])
            if not data:
                table.add_row(*[Text("none", style="dim")] + [Text("")] * 6)
        elif message.key == "activity":
            self.query_one("#spark", Sparkline).data = [n for _, n in data] or [0]
            total = sum(n for _, n in data)
            if data:
                txt = Text(f"{total:,} events from {fmt(data[0][0])} to {fmt(data[-1][0])} in {len(data)} buckets; "
                           f"busiest bucket {max(n for _, n in data):,} events")
            else:
                txt = Text("no timed events signed with this credential", style="dim")
            self.query_one("#activity", Static).update(txt)

    def _show_lineage(self, data: dict[str, Any]) -> None:
        tree = self.query_one("#lineage", Tree)
        tree.clear()
        node = tree.root
        tree.root.set_label(Text("minted from (root first) → this credential → minted"))
        if not data["ancestors"]:
            node.add_leaf(Text("not in the credentials table (origin unknown)", style="dim"))
        for row in data["ancestors"]:
            label = lit(row[0], 80) + Text(f"  {fmt(row[2])}  origin {fmt(row[3])}  issued {fmt(row[4])}",
                                           style="dim")
            if row[0] == self.credential_id:
                label.stylize("bold")
            node = node.add(label, data=row[0], expand=True)
        children: dict[str | None, list[tuple[Any, ...]]] = {}
        for row in data["descendants"]:
            children.setdefault(row[1], []).append(row)

        def add(parent: Any, cid: str, depth: int) -> None:
            for row in children.get(cid, [])[:500]:
                child = parent.add(lit(row[0], 80) + Text(f"  {fmt(row[2])}  issued {fmt(row[4])}", style="dim"),
                                   data=row[0], expand=depth < 3)
                if depth < 32:
                    add(child, row[0], depth + 1)
        add(node, self.credential_id, 1)
        tree.root.expand_all()

    def on_tree_node_selected(self, event: Tree.NodeSelected[Any]) -> None:
        cid = event.node.data
        if cid and cid != self.credential_id:
            self.kt.open_target("credential", cid)

    def action_timeline(self) -> None:
        self.kt.open_target("timeline", f"cred:{self.credential_id}")

    def action_export(self) -> None:
        self.kt.export_report([self.credential_id])
