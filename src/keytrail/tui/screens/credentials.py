"""Credentials ranked by blast radius, and one credential opened.

The ranking and the blast radius are :func:`keytrail.analysis.answers.rank_credentials`
and :func:`~keytrail.analysis.answers.blast_radius` (their ``--json`` documents);
lineage is :mod:`keytrail.analysis.lineage` (``ancestry`` up, ``lineage_tree`` down);
linked identities and activity come from the ``links`` and ``events`` tables. Without the blast-radius module the list falls back
to the ``credentials`` table ordered by event count and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import duckdb
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer, Vertical, VerticalScroll
from textual.scroll_view import ScrollView
from textual.widgets import (
    DataTable,
    Input,
    Label,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
    Tabs,
    Tree,
)

from keytrail.analysis.lineage import ancestry, lineage_tree
from keytrail.idfmt import short_id
from keytrail.safetext import shown
from keytrail.tui import core
from keytrail.tui.lazy_rows import LazyRows
from keytrail.tui.messages import (
    ActivityLoaded,
    BlastLoaded,
    CredentialHeadLoaded,
    GrantedLoaded,
    IdentitiesLoaded,
    LineageLoaded,
    RankingLoaded,
    RankingPaged,
)
from keytrail.tui.queries import (
    TABLE_CAP,
    TimelineFilter,
    activity,
    credential_head,
    linked_identities,
)
from keytrail.tui.screens.base import CaseScreen, ExportScope
from keytrail.tui.target import Target
from keytrail.tui.widgets.doc_view import DocTable, DocView
from keytrail.tui.widgets.text import fmt, kv, lit


def _fallback_rank(cur: Any) -> list[dict[str, Any]]:
    rel = cur.execute(
        "SELECT credential_id, kind, origin, events, first_seen, last_seen, principal_uid FROM credentials "
        "ORDER BY events DESC NULLS LAST, credential_id LIMIT ?",
        [TABLE_CAP],
    )
    names = [d[0] for d in rel.description or []]
    return [dict(zip(names, r)) for r in rel.fetchall()]


def _as_page(got: Any) -> tuple[list[dict[str, Any]], int] | None:
    """A ranking page (:func:`keytrail.analysis.answers.rank_page`) as documents and its count."""
    if got is None:
        return None
    rows, matched = got
    return core.as_doc(rows), int(matched)


FILTER_KEYS = (
    "credential",
    "credential_id",
    "kind",
    "holder",
    "origin",
    "principal",
    "principal_uid",
    "agents",
    "humans",
)


#: Ranking rows read per page from the analysis snapshot (one SQL query, tens of milliseconds).
PAGE_ROWS = 200


def _haystack(row: dict[str, Any]) -> str:
    """What the filter searches, as the stored ranking's filter does
    (:data:`keytrail.analysis.snapshot.RANK_HAYSTACK`): the credential's id, kind, holder,
    origin, principal, agents and humans, the non-empty ones joined by a space."""
    return " ".join(t for t in (fmt(row.get(k)) for k in FILTER_KEYS) if t).lower()


class CredentialsScreen(CaseScreen):
    TITLE = "Credentials"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", id="credentials.filter"),
        Binding("y", "copy_id", "Copy id", id="credentials.copy"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        #: The ranking (the filtered rows when read page by page from the snapshot).
        self.rows: Sequence[dict[str, Any]] = []
        #: The whole ranking is reachable through ``rows`` (held, or read page by page).
        self.complete = False
        #: ``paged``: the analysis snapshot's ranking read a page at a time, filtered in SQL;
        #: ``ranked``: computed live and held whole; ``fallback``: no analysis in this build.
        self._how = "ranked"
        #: How many credentials the case ranks (the unfiltered count, when paged).
        self.total = 0
        #: :func:`keytrail.analysis.answers.rank_page` (``None``: no analysis in this build).
        self._pager = core.engine(core.RANK_PAGE)

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        yield Input(id="filter", placeholder="filter credentials (id, kind, principal…)")
        yield VerticalScroll(id="list")
        yield Static(id="status")

    def on_mount(self) -> None:
        if core.engine(core.RANK) is None or self._pager is None:
            self.load(RankingLoaded, lambda s: RankingLoaded("fallback", _fallback_rank(s.con)))
        else:
            # With a current analysis snapshot the list reads the stored ranking a page at a
            # time (~0.1 s to the first rows at any size); without one it ranks whole.
            self._how = "paged"
            self._load_page("")
        self.status(Text("ranking… (Escape cancels)", style="dim"))

    def _load_page(self, contains: str) -> None:
        page = self._pager
        assert page is not None
        known = self.total  # the unfiltered count, once read

        def first(s: Any) -> RankingPaged:
            got = _as_page(page(s, offset=0, limit=PAGE_ROWS, contains=contains))
            if got is None or not contains or known:
                return RankingPaged(contains, got, total=known or (got[1] if got else 0))
            whole = _as_page(page(s, offset=0, limit=0))  # a filter typed before the first page
            return RankingPaged(contains, got, total=whole[1] if whole else got[1])

        self.load(RankingPaged, first)

    def on_ranking_paged(self, message: RankingPaged) -> None:
        if message.page is None:  # no current snapshot: rank whole (computed live)
            rank = core.engine(core.RANK)
            assert rank is not None
            self._how = "ranked"
            self.load(RankingLoaded, lambda s: RankingLoaded("ranked", core.as_doc(rank(s))))
            return
        first, matched = message.page
        self.total = message.total
        page = self._pager
        assert page is not None
        store, contains = self.store, message.contains

        def fetch(offset: int, limit: int) -> list[dict[str, Any]]:
            # the main thread's read of a page the table reached (the case is read-only)
            try:
                got = _as_page(page(store, offset=offset, limit=limit, contains=contains))
            except duckdb.Error as e:  # the list ends here, and says why
                self.notify(
                    f"could not read more of the ranking: {e}", severity="error", markup=False
                )
                return []
            return got[0] if got is not None else []

        self._how, self.complete = "paged", True
        self.rows = LazyRows(min(matched, TABLE_CAP), fetch, page=PAGE_ROWS, first=first)
        self._show(self.rows, matched)

    def on_ranking_loaded(self, message: RankingLoaded) -> None:
        self._how, self.rows = message.how, message.rows
        self.total = len(message.rows)
        self.complete = True
        self._fill(self.query_one("#filter", Input).value)

    def _fill(self, text: str) -> None:
        needle = text.lower()
        rows = [r for r in self.rows if not needle or needle in _haystack(r)]
        self._show(rows, len(rows))

    def _show(self, rows: Sequence[dict[str, Any]], matched: int) -> None:
        tables = self.query("#creds").results(DocTable)
        table = next(tables, None)
        if table is None and rows:  # its columns are the first rows' (none yet: no table)
            table = DocTable(
                "credentials",
                rows,
                id="creds",
                columns=list_columns(rows),
                cells=ID_CELLS,
                target=rank_target,
            )
            self.query_one("#list", VerticalScroll).mount(table)
            table.focus()
        elif table is not None:
            table.set_rows(rows)
        note = (
            f"  ·  not ranked: {core.RANK[0]} is not in this build (listed by event count)"
            if self._how == "fallback"
            else ""
        )
        cap = f" (first {TABLE_CAP:,})" if matched > TABLE_CAP or len(rows) >= TABLE_CAP else ""
        self.status(Text(f"{matched:,} of {self.total:,} credentials{cap}  ·  Enter opens{note}"))

    def on_input_changed(self, event: Input.Changed) -> None:
        if self._how == "paged":
            self._load_page(event.value)
        elif self.complete:
            self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        for t in self.query(DocTable):
            t.focus()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_copy_id(self) -> None:
        """Copy the full id of the selected credential (the list shows it shortened)."""
        table = next(self.query("#creds").results(DocTable), None)
        if table is None or not table.row_count:
            return
        row = table.rows_doc[table.cursor_row]
        copy_id(self, str(row.get("credential") or row.get("credential_id") or ""))


def copy_id(screen: CaseScreen, ident: str) -> None:
    """Put ``ident`` whole on the clipboard (OSC 52 in a terminal) and say so."""
    if not ident:
        screen.notify("nothing to copy", markup=False)
        return
    screen.app.copy_to_clipboard(ident)
    screen.notify(f"copied {shown(ident, 200)}", markup=False)


def rank_target(row: dict[str, Any]) -> Target:
    ident = str(row.get("credential") or row.get("credential_id"))
    return Target("credential", ident, rank=row if "score_terms" in row else None)


def _short(value: Any) -> Text:
    return Text(shown(short_id(fmt(value), 22), 40)) if value else Text("")


#: Ids shown short in the list (``y`` copies the whole id, a unique prefix is accepted back).
ID_CELLS = {"credential": _short, "credential_id": _short}
#: The list's columns, most telling first: at 80 columns the id and the score are what fits.
LIST_FIRST = ("credential", "credential_id", "score", "kind", "events", "agents", "humans")


def list_columns(rows: Sequence[dict[str, Any]]) -> list[str] | None:
    if not rows:
        return None
    present = list(rows[0])
    drop = {"score_terms", "derived_credentials"}
    return [c for c in LIST_FIRST if c in present] + [
        c for c in present if c not in LIST_FIRST and c not in drop
    ]


def granted_doc(p: dict[str, Any]) -> dict[str, Any]:
    """The potential blast radius (``keytrail blast --json`` ``potential``) as the report's tables."""
    if not p.get("available"):
        return {
            "policy snapshot": "none in this case",
            "why": p["reason"] or "",
            "how": "ingest `aws iam get-account-authorization-details` output or Vault policies "
            "(docs/formats/policies.md)",
        }
    from keytrail.report.potential_rows import intro, tables

    doc: dict[str, Any] = {"summary": intro(p)}
    for title, headers, rows in tables(p):
        doc[title] = [dict(zip(headers, row)) for row in rows] or "none"
    return doc


def _events(doc: dict[str, Any], first: str, last: str) -> str | None:
    own, total = doc.get("own_events"), doc.get("events")
    if not isinstance(own, int):
        return None
    family = (
        f", {total:,} with the credentials minted from it"
        if isinstance(total, int) and total != own
        else ""
    )
    return f"{own:,} signed by it{family}  ({first} .. {last})"


def _holder(h: Any) -> str | None:
    """Who holds it, per the principal classifier: a class (ranking row) or a decision (blast)."""
    if isinstance(h, dict):
        who = f" {fmt(h.get('person'))}" if h.get("person") else ""
        return f"{fmt(h.get('class'))}{who}  ({fmt(h.get('confidence'))}: {fmt(h.get('reason'))})"
    return fmt(h) if h else None


def summary(doc: dict[str, Any], score_pending: bool) -> Any:
    """The credential's header facts and, when known, its score and score terms (``rank`` or blast document)."""
    first, last = fmt(doc.get("first_seen")), fmt(doc.get("last_seen"))
    pairs: list[tuple[str, Any]] = [
        ("score", "computing… (Escape cancels)" if score_pending else doc.get("score")),
        ("kind", " · ".join(fmt(doc.get(k)) for k in ("kind", "origin") if doc.get(k))),
        ("principal", doc.get("principal")),
        ("holder", _holder(doc.get("holder"))),
        ("events", _events(doc, first, last)),
    ]
    for key in ("agents", "humans"):
        if doc.get(key):
            pairs.append(
                (key, ", ".join(fmt(v) for v in doc[key][:8]) + (" …" if len(doc[key]) > 8 else ""))
            )
    terms = [t for t in doc.get("score_terms") or [] if t.get("points")]
    for i, term in enumerate(terms):
        pairs.append(
            (
                "score terms" if i == 0 else " ",
                f"{term['points']:>6g}  {fmt(term.get('explanation'))}",
            )
        )
    return kv([(k, v) for k, v in pairs if v not in (None, "")], key_width=13)


def summary_line(doc: dict[str, Any], score_pending: bool) -> Text:
    """The folded header: score, kind, events and who on one line after ``▸`` (``h`` unfolds)."""
    score = "computing…" if score_pending else fmt(doc.get("score"))
    own, total = doc.get("own_events"), doc.get("events")
    events = f"{own:,} events" if isinstance(own, int) else ""
    if events and isinstance(total, int) and total != own:
        events += f" ({total:,} with minted)"
    parts = [
        f"score {score}" if score else "",
        fmt(doc.get("kind")),
        events,
        ", ".join(fmt(v) for v in (doc.get("humans") or [])[:2]),
    ]
    return Text("▸ " + " · ".join(p for p in parts if p), no_wrap=True, overflow="ellipsis")


#: Terminals lower than this start with the credential header folded to one line.
FOLD_BELOW = 34


class CredentialScreen(CaseScreen):
    """One credential: blast radius (with score terms), lineage, identities, activity.

    Opened from a ranked list (``rank`` is that row), the header, score and score terms show
    at once; otherwise one indexed lookup fills the header while the score is computed.
    The blast radius, lineage, identities and activity stream in from their own workers.
    """

    TITLE = "Credential"
    DEFAULT_CSS = """
    CredentialScreen #summary { height: auto; max-height: 14; padding: 0 1; }
    CredentialScreen #tabs { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "tab('tab-blast')", "Blast", show=False, id="credential.tab1"),
        Binding("2", "tab('tab-lineage')", "Lineage", show=False, id="credential.tab2"),
        Binding("3", "tab('tab-ids')", "Identities", show=False, id="credential.tab3"),
        Binding("4", "tab('tab-activity')", "Activity", show=False, id="credential.tab4"),
        Binding("5", "tab('tab-granted')", "Granted", show=False, id="credential.tab5"),
        Binding("t", "timeline", "Timeline", id="credential.timeline"),
        Binding("h", "fold", "Header", id="credential.fold"),
        # ↓ on the tab bar (which holds focus when the view opens) goes into the active tab
        Binding("down", "into_tab", "Into the tab", show=False, id="credential.into"),
        Binding("y", "copy_id", "Copy id", show=False, id="credential.copy"),
        Binding("e", "export", "Export", id="credential.export"),
    ]

    def __init__(self, credential_id: str, rank: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.credential_id = credential_id
        self.rank = rank if rank and rank.get("credential") == credential_id else None
        self._head: dict[str, Any] = {}
        #: The workers were started (after the first paint).
        self.started = False
        #: The score is on screen (from the rank row at once, or from the blast radius when it lands).
        self.score_shown = self.rank is not None
        #: What the header shows: the newest facts, and whether the score is still computing.
        self._facts: tuple[dict[str, Any], bool] | None = (self.rank, False) if self.rank else None
        #: The header is folded to one line (short terminals start folded; ``h`` toggles).
        self.folded: bool | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        yield Label(Text("credential ", style="bold") + lit(self.credential_id, 200), id="head")
        yield Static(Text("loading… (Escape cancels)", style="dim"), id="summary")
        yield Vertical(id="tabs")  # the four tabs are mounted after the first paint (see _start)
        yield Static(id="status")

    def on_mount(self) -> None:
        self.folded = self.app.size.height < FOLD_BELOW
        self._render_summary()
        self.sub_title = shown(self.credential_id, 100)
        export = (
            "e exports a report"
            if core.engine(core.REPORT)
            else f"export unavailable ({core.REPORT[0]} not in this build)"
        )
        self.status(
            Text(
                f"1-5 tabs · h header · t timeline (with minted keys) · y copy id · {export} · "
                "Escape stops what is still computing, then goes back"
            )
        )
        # Paint the header and score first: the workers' queries take both cores on a big case.
        self.call_after_refresh(self._start)

    @staticmethod
    def _tabs() -> TabbedContent:
        tabs = TabbedContent()
        for pane in (
            TabPane(
                "1 Blast radius",
                VerticalScroll(
                    Static(Text("computing… (Escape cancels)", style="dim")), id="blast"
                ),
                id="tab-blast",
            ),
            TabPane("2 Lineage", Tree(Text("lineage"), id="lineage"), id="tab-lineage"),
            TabPane(
                "3 Agents & humans",
                VerticalScroll(
                    VerticalScroll(
                        Static(Text("from the blast radius…", style="dim")), id="ids-doc"
                    ),
                    Label("graph edges of this credential", classes="head"),
                    DataTable(id="ids", cursor_type="row"),
                ),
                id="tab-ids",
            ),
            TabPane(
                "4 Activity", Sparkline([], id="spark"), Static(id="activity"), id="tab-activity"
            ),
            TabPane(
                "5 Granted by policy",
                VerticalScroll(
                    Static(Text("computing… (Escape cancels)", style="dim")), id="granted"
                ),
                id="tab-granted",
            ),
        ):
            tabs.compose_add_child(pane)  # what ``with TabbedContent():`` does in a compose
        return tabs

    async def _start(self) -> None:
        """After the first paint: mount the tabs (a third of the screen's mount cost), start the workers."""
        if not self.is_attached:  # left before its first paint
            return
        await self.query_one("#tabs", Vertical).mount(self._tabs())
        cid = self.credential_id
        if self.rank is None:
            self.load(
                CredentialHeadLoaded, lambda s: CredentialHeadLoaded(credential_head(s.con, cid))
            )
        blast = core.engine(core.BLAST)
        if blast is None:
            self._blast_unavailable()
        else:
            self.load(BlastLoaded, lambda s: BlastLoaded(core.as_doc(blast(s, cid))))
        self.load(
            LineageLoaded,
            lambda s: LineageLoaded(*ancestry(s, cid), lineage_tree(s, cid).as_dict()),
        )
        self.load(IdentitiesLoaded, lambda s: IdentitiesLoaded(linked_identities(s.con, cid)))
        self.load(ActivityLoaded, lambda s: ActivityLoaded(activity(s.con, "credential_id", [cid])))
        potential = core.engine(core.POTENTIAL)
        if potential is not None:
            self.load(
                GrantedLoaded, lambda s: GrantedLoaded(granted_doc(potential(s, cid).as_dict()))
            )
        else:
            self._show_granted({"unavailable": f"{core.POTENTIAL[0]} is not in this build"})
        self.started = True

    def _show_granted(self, doc: dict[str, Any]) -> None:
        box = self.query_one("#granted", VerticalScroll)
        box.remove_children()
        box.mount(DocView(doc))

    def _blast_unavailable(self) -> None:
        box = self.query_one("#blast", VerticalScroll)
        box.remove_children()
        box.mount(Static(Text(f"unavailable: {core.BLAST[0]} is not in this build", style="dim")))

    def on_credential_head_loaded(self, message: CredentialHeadLoaded) -> None:
        data = message.row
        self._head = data or {}
        if not self.score_shown:
            if data:
                self._set_summary(data, core.engine(core.BLAST) is not None)
            else:
                self.query_one("#summary", Static).update(
                    Text("not in the credentials table of this case", style="dim")
                )

    def on_blast_loaded(self, message: BlastLoaded) -> None:
        data = message.doc
        if not self.score_shown:
            self._set_summary({**self._head, **data}, False)
            self.score_shown = True
        box = self.query_one("#blast", VerticalScroll)
        box.remove_children()
        box.mount(DocView(data, skip=("lineage", "filters")))
        # ↓ works at once, without a Tab first
        if self.app.focused is None or isinstance(self.app.focused, Tabs):
            self.call_after_refresh(self._focus_blast)
        ids = self.query_one("#ids-doc", VerticalScroll)
        ids.remove_children()
        ids.mount(DocView({"agents": data.get("agents") or [], "humans": data.get("humans") or []}))
        family = [self.credential_id, *(data.get("derived_credentials") or [])]
        self.load(
            ActivityLoaded,
            lambda s: ActivityLoaded(activity(s.con, "credential_id", family), len(family)),
        )

    def on_granted_loaded(self, message: GrantedLoaded) -> None:
        self._show_granted(message.doc)

    def on_lineage_loaded(self, message: LineageLoaded) -> None:
        self._show_lineage((message.steps, message.stopped, message.tree))

    def on_identities_loaded(self, message: IdentitiesLoaded) -> None:
        data = message.edges
        table = self.query_one("#ids", DataTable)
        table.clear(columns=True)
        table.add_columns("dir", "edge", "kind", "id", "confidence", "reason", "events")
        for row in data:
            table.add_row(*[lit(v, 80) for v in row])
        if not data:
            table.add_row(*[Text("none", style="dim")] + [Text("")] * 6)

    def on_activity_loaded(self, message: ActivityLoaded) -> None:
        family, data = message.family, message.buckets
        self.query_one("#spark", Sparkline).data = [n for _, n in data] or [0]
        total = sum(n for _, n in data)
        who = (
            "this credential"
            if family == 1
            else f"this credential and the {family - 1} minted from it"
        )
        if data:
            txt = Text(
                f"{total:,} events signed by {who}, {fmt(data[0][0])} .. {fmt(data[-1][0])}, "
                f"{len(data)} time buckets; busiest bucket {max(n for _, n in data):,} events"
            )
        else:
            txt = Text("no timed events signed with this credential", style="dim")
        self.query_one("#activity", Static).update(txt)

    def _show_lineage(self, data: tuple[list[Any], bool, dict[str, Any]]) -> None:
        """Root first down to this credential (``ancestry``), then everything minted from it (``lineage_tree``)."""
        steps, stopped, tree_doc = data
        tree = self.query_one("#lineage", Tree)
        tree.clear()
        tree.root.set_label(Text("minted from (root first) → this credential → minted from it"))
        node = tree.root
        if steps:
            node = node.add(
                lit(steps[0].parent, 80) + Text("  root", style="dim"),
                data=steps[0].parent,
                expand=True,
            )
        else:
            node.add_leaf(
                Text("root: not minted from another credential in the evidence", style="dim")
            )
        for step in steps:
            node = node.add(
                self._label(step.child, step.reason, step.confidence, len(step.evidence)),
                data=step.child,
                expand=True,
            )
        if stopped:
            node.add_leaf(Text("(walk stopped: cycle or depth cap)", style="dim"))
        if not steps:
            node = node.add(
                self._label(self.credential_id, None, None, 0), data=self.credential_id, expand=True
            )

        def size(children: list[dict[str, Any]]) -> int:
            return sum(1 + size(c.get("children") or []) for c in children)

        # A small tree opens whole: the deepest keys (a backdoor key, a cross-account session) are the
        # ones a responder looks for; only big trees fold below depth 3.
        small = size(tree_doc.get("children") or []) <= 100

        def add(parent: Any, children: list[dict[str, Any]], depth: int) -> None:
            for child in children[:500]:
                n = parent.add(
                    self._label(
                        child["credential"],
                        child.get("reason"),
                        child.get("confidence"),
                        len(child.get("evidence") or []),
                        child.get("kind"),
                    ),
                    data=child["credential"],
                    expand=small or depth < 3,
                )
                add(n, child.get("children") or [], depth + 1)

        add(node, tree_doc.get("children") or [], 1)
        tree.root.expand()

    def _label(
        self,
        cid: str,
        reason: str | None,
        confidence: str | None,
        evidence: int,
        kind: str | None = None,
    ) -> Text:
        label = lit(cid, 80, style="bold" if cid == self.credential_id else "")
        extra = "  ".join(
            x
            for x in (
                kind or "",
                confidence or "",
                reason or "",
                f"{evidence} events" if evidence else "",
            )
            if x
        )
        return label + Text("  " + extra, style="dim") if extra else label

    def on_tree_node_selected(self, event: Tree.NodeSelected[Any]) -> None:
        cid = event.node.data
        if cid and cid != self.credential_id:
            self.kt.open_target("credential", cid)

    def _set_summary(self, doc: dict[str, Any], pending: bool) -> None:
        self._facts = (doc, pending)
        self._render_summary()

    def _render_summary(self) -> None:
        box = self.query_one("#summary", Static)
        if self._facts is None:
            return
        doc, pending = self._facts
        box.update(summary_line(doc, pending) if self.folded else summary(doc, pending))
        box.styles.height = 1 if self.folded else "auto"

    def action_into_tab(self) -> None:
        for tabs in self.query(TabbedContent):
            self.action_tab(tabs.active or "tab-blast")

    def _focus_blast(self) -> None:
        """Tab 1's first list takes focus once it is laid out (unless the user moved on already)."""
        if self.app.focused is None or isinstance(self.app.focused, Tabs):
            blast = self.query_one("#blast")
            tables = [w for w in self.focus_chain if blast in w.ancestors]
            if tables:
                tables[0].focus()
            else:
                self.action_tab("tab-blast")

    def action_fold(self) -> None:
        """Fold or unfold the header (at 80x24 the full header left the tabs 3 lines)."""
        self.folded = not self.folded
        self._render_summary()

    def action_copy_id(self) -> None:
        copy_id(self, self.credential_id)

    def action_tab(self, tab: str) -> None:
        """Show tab ``tab`` and move focus into it, wherever focus was.

        TabbedContent shows the pane that holds the focused widget: with focus left in a
        table of the old pane, the switch was undone at once (digits seemed dead there).
        """
        for tabs in self.query(TabbedContent):  # none until mounted after the first paint
            tabs.active = tab
            pane = tabs.get_pane(tab)
            inside = [
                w
                for w in pane.query("*")
                if w.can_focus
                and (isinstance(w, ScrollView) or not isinstance(w, ScrollableContainer))
            ]
            if inside:
                inside[0].focus()
            else:
                tabs.query_one(Tabs).focus()

    def action_timeline(self) -> None:
        """The events of this credential and every credential minted from it (``m``: its own)."""
        self.kt.open_target("timeline", f"family:{self.credential_id}")

    def action_export(self) -> None:
        self.kt.export_report([self.credential_id], self.export_scope())

    def export_scope(self) -> ExportScope:
        """Its events and those of every credential minted from it (the timeline's ``family:``)."""
        cid = self.credential_id
        return ExportScope(
            f"{short_id(cid, 24)} and what it minted", TimelineFilter(terms={"family": cid}).where()
        )
