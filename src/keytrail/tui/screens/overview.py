"""Overview: the case at a glance (``case_info`` + top credentials + findings per level).

The same numbers as ``keytrail info`` (both call :func:`keytrail.analysis.summary.case_info`),
plus the top credentials by blast radius and the findings per level when those
analysis modules are present.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label, Static

from keytrail.analysis.summary import case_info
from keytrail.tui import core
from keytrail.tui.messages import CaseInfoLoaded, LevelCountsLoaded, TopCredentialsLoaded
from keytrail.tui.queries import principal_kinds
from keytrail.tui.screens.base import CaseScreen
from keytrail.tui.screens.credentials import ID_CELLS, copy_id, list_columns, rank_target
from keytrail.tui.widgets.doc_view import DocTable
from keytrail.tui.widgets.text import LEVEL_STYLE, kv, lit


class OverviewScreen(CaseScreen):
    TITLE = "Overview"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "copy_id", "Copy id", show=False, id="overview.copy")
    ]

    def action_copy_id(self) -> None:
        table = next(self.query("#top").results(DocTable), None)
        if table is not None and table.row_count:
            copy_id(self, str(table.rows_doc[table.cursor_row].get("credential") or ""))

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        # The answer first: the top credentials and the findings fit an 80x24 terminal;
        # the case's facts, sources and evidence follow below the fold.
        with VerticalScroll():
            yield Label("top credentials by blast radius", classes="head")
            yield Static(Text("…", style="dim"), id="top-note")
            yield Label("findings per level", classes="head")
            yield Static(Text("…", style="dim"), id="findings")
            yield Label("case", classes="head")
            yield Static(Text("loading case…", style="dim"), id="facts")
            yield Label("sources", classes="head")
            yield DataTable(id="sources", cursor_type="row")
            yield Label("evidence", classes="head")
            yield DataTable(id="evidence", cursor_type="row")
        yield Static(id="status")

    def on_mount(self) -> None:
        self.load(CaseInfoLoaded, lambda s: CaseInfoLoaded(case_info(s), principal_kinds(s.con)))
        rank = core.engine(core.RANK)
        if rank is None:
            self.query_one("#top-note", Static).update(
                Text(f"unavailable: {core.RANK[0]} is not in this build", style="dim")
            )
        else:
            self.load(
                TopCredentialsLoaded,
                lambda s: TopCredentialsLoaded(core.as_doc(rank(s, limit=10))),
            )
        counts = core.engine(core.LEVEL_COUNTS)  # from the case's analysis snapshot when current
        if counts is None:
            self.query_one("#findings", Static).update(
                Text(f"unavailable: {core.FINDINGS[0]} is not in this build", style="dim")
            )
        else:
            self.load(LevelCountsLoaded, lambda s: LevelCountsLoaded(counts(s)))

    def on_case_info_loaded(self, message: CaseInfoLoaded) -> None:
        info, kinds = message.info, message.kinds
        tr = info["time_range"]
        c = info["counts"]
        state = "complete" if info["finalized"] else "INCOMPLETE - re-run keytrail ingest"
        facts = kv(
            [
                ("case", info["case"]),
                ("ingest", state),
                ("time span (UTC)", f"{tr[0] or '-'} .. {tr[1] or '-'}"),
                ("events", f"{info['events']:,}"),
                ("rejected records", f"{info['rejected']:,}"),
                ("credentials", f"{c['credentials']:,}"),
                ("agents", f"{kinds.get('agent', 0):,} (inventory: {c['inventory_agents']:,})"),
                ("humans", f"{kinds.get('human', 0):,}"),
                ("principals", f"{c['principals']:,}"),
                ("graph edges", f"{c['links']:,}"),
                (
                    "integrity",
                    ", ".join(f"{k} {v}" for k, v in sorted(info["integrity"].items())) or "-",
                ),
            ]
        )
        self.query_one("#facts", Static).update(facts)
        src = self.query_one("#sources", DataTable)
        src.clear(columns=True)
        src.add_columns("source", "files", "events", "rejected", "first (UTC)", "last (UTC)")
        for name, s in info["sources"].items():
            src.add_row(
                lit(name),
                f"{s['files']:,}",
                f"{s['events']:,}",
                f"{s['rejected']:,}",
                lit(s["time_range"][0]),
                lit(s["time_range"][1]),
            )
        ev = self.query_one("#evidence", DataTable)
        ev.clear(columns=True)
        ev.add_columns(
            "file", "status", "source", "integrity", "events", "rejected", "sha256", "path"
        )
        for e in info["evidence"][:1000]:
            ev.add_row(
                str(e["file_id"]),
                lit(e["status"]),
                lit(e["source"]),
                lit(e["integrity"]),
                f"{e['events'] or 0:,}",
                f"{e['rejected'] or 0:,}",
                lit((e["sha256"] or "")[:16]),
                lit(e["path"], 200),
            )
        self.status(
            Text(
                f"{info['events']:,} events · c credentials · a agents · t timeline · "
                "f findings · s SQL · ctrl+p jump to any id · F1 help"
            )
        )

    def on_top_credentials_loaded(self, message: TopCredentialsLoaded) -> None:
        rows = message.rows
        note = self.query_one("#top-note", Static)
        if not rows:
            note.update(Text("no credentials in this case", style="dim"))
            return
        note.update(Text("Enter opens a credential · y copies its id", style="dim"))
        table = DocTable(
            "top credentials",
            rows,
            id="top",
            columns=list_columns(rows),
            cells=ID_CELLS,
            target=rank_target,
        )
        self.query_one(VerticalScroll).mount(table, after=note)
        table.focus()

    def on_level_counts_loaded(self, message: LevelCountsLoaded) -> None:
        out = Text()
        for level, n in message.counts.items():
            out.append(f"{level} ", style=LEVEL_STYLE.get(level, ""))
            out.append(f"{n:,}   ")
        out.append("(f opens them)", style="dim")
        self.query_one("#findings", Static).update(out)
