"""The dashboard's web application (Starlette, Jinja2 templates, server-side charts).

Read-only: every handler reads the research directory and writes nothing there. Pages render from
the in-memory leaderboard index (orze.dashboard.index) and a few small files per request
(orze.dashboard.campaign), so they keep working while the daemon is down; they then show the age
of the last heartbeat. `/stream` is a server-sent-events stream: an `update` event whenever the
leaderboard or the other state a page shows changed, and a `tick` with the server's time; the
pages' script then fetches the same address with `X-Orze-Partial: 1` and swaps the content in.

`create_app(layout, token=..., loopback_only=...)` builds the app; orze.dashboard.server runs it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from orze.dashboard import campaign
from orze.dashboard.analysis import AnalysisCache
from orze.dashboard.auth import AuthMiddleware
from orze.dashboard.charts import ChartCache, curves_png, overview_png
from orze.dashboard.index import Query, QueryError, RunIndex, field_value, text
from orze.layout import Layout
from orze.store import queue

HERE = Path(__file__).parent
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")   # never '..' or a path
STREAM_POLL_S = 0.5
STATE_POLL_S = 2.0
TICK_S = 5.0
PER_PAGE = (25, 50, 100, 200)
COLUMNS = ("backbone", "temporal_encoder", "pooling", "loss", "learning_rate", "batch_size", "epochs")


def _ago(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _num(v: Any, digits: int = 4) -> str:
    if isinstance(v, bool) or v is None:
        return "–" if v is None else str(v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return "–"
        if isinstance(v, float):
            return f"{v:.{digits}f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
        return str(v)
    return str(v)


def _dt(t: Any) -> str:
    if not isinstance(t, (int, float)):
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


class Dashboard:
    """The state one server holds: the index, caches, templates; methods return plain data."""

    def __init__(self, layout: Layout, analysis_interval_s: float = 120.0):
        self.layout = layout
        self.index = RunIndex(layout.leaderboard)
        self.charts = ChartCache()
        self.analysis = AnalysisCache(layout, analysis_interval_s)
        self.config_error: str | None = None
        specs = []
        self.higher_first = True   # the ranked metric's direction: the leaderboard's default order
        try:
            from orze.config import load_project

            project = load_project(layout)
            specs = project.agents
            self.higher_first = project.task.spec.direction == "max"
        except Exception as e:  # the dashboard still shows the campaign with a broken config
            self.config_error = str(e)
        self.agents = campaign.AgentView(layout, specs)
        self.env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(ago=_ago, num=_num, dt=_dt, text=text,
                                tojson_pretty=lambda o: json.dumps(o, indent=2, sort_keys=True, default=str))
        self.env.globals.update(field_value=field_value)

    # --- figures -----------------------------------------------------------------------------
    def state_signature(self) -> tuple:
        """Changes when anything a non-leaderboard page shows changed (mtimes of small files, and
        the background analysis finishing)."""
        sig: list = [self.analysis.computed_at]
        for d in (self.layout.nodes, self.layout.queue, self.layout.rejected, self.layout.agents):
            try:
                sig.append(os.stat(d).st_mtime_ns)
            except OSError:
                sig.append(None)
        try:
            for e in os.scandir(self.layout.nodes):
                if e.name.endswith(".json"):
                    sig.append((e.name, e.stat().st_mtime_ns))
        except OSError:
            pass
        try:
            for d in os.scandir(self.layout.agents):
                for name in ("state.json", "ledger.jsonl"):
                    try:
                        sig.append((d.name, name, os.stat(os.path.join(d.path, name)).st_mtime_ns))
                    except OSError:
                        pass
        except OSError:
            pass
        return tuple(sig)

    def overview(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        ix = self.index
        ix.refresh()
        with ix._lock:
            best = ix.best.best
            rb = ix.best
            counts = ix.counts()
            last_hour = {s: ix.finished_since(s, now - 3600) for s in ("done", "failed", "misconfigured")}
            curve_len = len(ix.curve)
            within = None
            if best is not None and curve_len >= 2 and rb.threshold is not None:
                within = (ix.curve[-1][1] - ix.curve[-2][1]) < rb.threshold
            fig = {
                "rows": len(ix.rows), "version": ix.version, "counts": counts, "last_hour": last_hour,
                "best": best, "sigma": rb.sigma, "threshold": rb.threshold,
                "replicated": rb.replicated_configs, "best_within_noise": within,
                "since_best_runs": rb.since_best,
                "since_best_s": (now - best["finished_at"]) if best and isinstance(best.get("finished_at"), (int, float)) else None,
                "improvements": max(0, curve_len - 1),
            }
        fig["throughput"] = ix.throughput(now)
        nodes = campaign.nodes(self.layout, now)
        fig["nodes"] = nodes
        fig["slots_total"] = sum(len(n.get("slots") or []) for n in nodes if n["alive"])
        fig["slots_busy"] = sum(1 for n in nodes if n["alive"] for s in n.get("slots") or [] if s.get("run"))
        fig["last_heartbeat_age"] = min((n["age_s"] for n in nodes if n.get("age_s") is not None), default=None)
        fig["queue"] = queue.depth(self.layout)
        try:
            fig["inbox"] = sum(1 for n in os.listdir(self.layout.inbox) if not n.startswith("."))
        except FileNotFoundError:
            fig["inbox"] = 0
        fig["agents"] = self.agents.all()
        fig["now"] = now
        return fig

    def overview_chart(self) -> bytes:
        ix = self.index
        ix.refresh()
        with ix._lock:
            version = ix.version
        def render():
            with ix._lock:
                rows, curve = list(ix.rows), list(ix.curve)
                name = (ix.best.best or {}).get("metric_name") or "metric"
            return overview_png(rows, curve, name)
        return self.charts.get("overview", version, render)

    def query_from(self, params) -> Query:
        filters: dict[str, list[str]] = {}
        for k, v in params.multi_items():
            if v == "":
                continue
            if k in ("status", "agent", "source", "node", "priority", "model") or k.startswith("cfg."):
                filters.setdefault(k, []).append(v)
        try:
            page = int(params.get("page", 1))
            per = int(params.get("per", 50))
        except ValueError:
            raise QueryError("page and per must be whole numbers")
        sort = params.get("sort", "metric")
        # best first by default: for a minimised metric (log_loss) that is ascending
        desc = params["desc"] != "0" if "desc" in params else (sort != "metric" or self.higher_first)
        return Query(sort=sort, desc=desc, filters=filters, page=page, per_page=per)

    def default_query(self) -> Query:
        return Query(desc=self.higher_first)

    def render(self, name: str, request: Request, status_code: int = 200, **ctx) -> HTMLResponse:
        partial = request.headers.get("x-orze-partial") == "1"
        tpl = self.env.get_template(name)
        html = tpl.render(partial=partial, request=request, now=time.time(), root=str(self.layout.root),
                          campaign=self.layout.root.name, config_error=self.config_error,
                          version=self.index.version, **ctx)
        return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def create_app(layout: Layout, *, token: str | None = None, loopback_only: bool = True,
               analysis_interval_s: float = 120.0) -> Starlette:
    dash = Dashboard(layout, analysis_interval_s)
    dash.index.refresh(force=True)

    def overview(request: Request):
        return dash.render("overview.html", request, page_name="overview", o=dash.overview())

    def leaderboard(request: Request):
        dash.index.refresh()
        try:
            q = dash.query_from(request.query_params)
            page = dash.index.query(q)
            error = None
        except QueryError as e:
            q, error = dash.default_query(), str(e)
            page = dash.index.query(q)
        sortable, filterable = dash.index.fields()
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page", "token")]
        return dash.render("leaderboard.html", request, page_name="leaderboard", q=q, p=page, error=error,
                           sortable=sortable, filterable=filterable, facets=dash.index.facet_options(),
                           columns=COLUMNS, params=params, per_options=PER_PAGE,
                           all_rows=len(dash.index.rows), status_code=400 if error else 200)

    def run_detail(request: Request):
        dash.index.refresh()
        run_id = request.path_params["run_id"]
        if not RUN_ID.match(run_id):
            return HTMLResponse("not a run id", status_code=404)
        row = dash.index.get(run_id)
        files = campaign.run_files(layout, run_id)
        if row is None and not files["exists"]:
            return HTMLResponse(f"no run {run_id!r} on the leaderboard or under runs/exp/", status_code=404)
        parent = row.get("parent") if row else None
        children = [dash.index.get(c) or {"id": c} for c in dash.index.children.get(run_id, [])]
        return dash.render("run.html", request, page_name="run", run_id=run_id, row=row or {}, files=files,
                           parent=dash.index.get(parent) if parent else None, parent_id=parent,
                           children=children)

    def queue_page(request: Request):
        depth, entries = campaign.queue_entries(layout)
        nrej, rejected = campaign.rejections(layout)
        return dash.render("queue.html", request, page_name="queue", depth=depth, entries=entries,
                           nrej=nrej, rejected=rejected)

    def nodes_page(request: Request):
        return dash.render("nodes.html", request, page_name="nodes", nodes=campaign.nodes(layout))

    def agents_page(request: Request):
        return dash.render("agents.html", request, page_name="agents", agents=dash.agents.all())

    def analysis_page(request: Request):
        dash.index.refresh()
        st = dash.analysis.state(dash.index.version)
        return dash.render("analysis.html", request, page_name="analysis", a=st)

    def chart_overview(request: Request):
        return Response(dash.overview_chart(), media_type="image/png", headers={"Cache-Control": "no-store"})

    def chart_curves(request: Request):
        if not RUN_ID.match(request.path_params["run_id"]):
            return HTMLResponse("not a run id", status_code=404)
        files = campaign.run_files(layout, request.path_params["run_id"])
        hist = (files.get("metrics") or {}).get("history") or []
        return Response(curves_png(hist), media_type="image/png", headers={"Cache-Control": "no-store"})

    def api_overview(request: Request):
        o = dash.overview()
        o["agents"] = [{k: v for k, v in a.items()} for a in o["agents"]]
        return JSONResponse(json.loads(json.dumps(o, default=str)))

    def api_leaderboard(request: Request):
        dash.index.refresh()
        try:
            page = dash.index.query(dash.query_from(request.query_params))
        except QueryError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        return JSONResponse(json.loads(json.dumps(
            {"total": page.total, "page": page.page, "pages": page.pages, "version": page.version,
             "rows": page.rows}, default=str)))

    async def stream(request: Request):
        async def events():
            version, sig = None, None
            last_tick = last_state = 0.0
            yield "retry: 1000\n\n"
            while True:
                if await request.is_disconnected():
                    return
                await run_in_threadpool(dash.index.refresh)
                now = time.monotonic()
                changed = dash.index.version != version
                if now - last_state >= STATE_POLL_S:
                    last_state = now
                    new_sig = await run_in_threadpool(dash.state_signature)
                    changed = changed or (sig is not None and new_sig != sig)
                    sig = new_sig
                if changed:
                    version = dash.index.version
                    yield f"event: update\ndata: {json.dumps({'version': version, 'now': time.time()})}\n\n"
                if now - last_tick >= TICK_S:
                    last_tick = now
                    yield f"event: tick\ndata: {json.dumps({'now': time.time()})}\n\n"
                await asyncio.sleep(STREAM_POLL_S)
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    routes = [
        Route("/", overview), Route("/leaderboard", leaderboard), Route("/run/{run_id}", run_detail),
        Route("/queue", queue_page), Route("/nodes", nodes_page), Route("/agents", agents_page),
        Route("/analysis", analysis_page), Route("/chart/overview.png", chart_overview),
        Route("/chart/run/{run_id}/curves.png", chart_curves), Route("/api/overview", api_overview),
        Route("/api/leaderboard", api_leaderboard), Route("/stream", stream),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.dashboard = dash
    app.add_middleware(AuthMiddleware, token=token, loopback_only=loopback_only)
    return app
