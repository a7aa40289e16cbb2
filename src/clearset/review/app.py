"""The review web app (Starlette): server-rendered pages, a small vendored script, a JSON API.

Routes (every write is a POST with a JSON body and the session token in ``X-Clearset-Token``):

    GET  /                         queues, decisions so far, apply
    GET  /queue/{name}             one queue, paged and filtered (?page, per_page, label, split, min, max)
    GET  /similar/{index}          the images nearest to one image in the features
    GET  /map                      the embedding map (UMAP, computed once in the background); drag a box
    GET  /api/map                  its points (at most 30,000 drawn), labels and finding kinds
    GET  /region                   the images inside a box of the map (?x0, x1, y0, y1, page), as a queue
    GET  /image/{index}.png        a thumbnail (?size=64|96|128|192), made from the pixel store on demand
    GET  /api/queue/{name}         the same page as JSON
    GET  /api/neighbours/{index}   ?k=: nearest images with their labels
    POST /api/decide               {finding, action: relabel|keep|drop|ambiguous, label?, index?, expect?}
    POST /api/bulk                 {queue, action: accept|keep|drop, label?, split?, min?, max?}
    POST /api/undo                 {finding?}
    POST /api/apply                {}

A user mistake (unknown finding, bad class, malformed body) is a 4xx with ``{"error": message}`` and
changes nothing. Paths never come from a request: images are addressed by their row number only.
"""

from __future__ import annotations

import hmac
import io
import json
import threading
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..artifacts.reviewed import version_folders
from ..errors import ClearsetError, ParameterError
from ..io import write_bytes
from ..vectors import l2_normalise
from ..workspace import Workspace
from .apply import apply_review
from .decisions import Conflict, open_log
from .findings import QUEUES, Findings, NotFound, review_dir
from .projection import MapJob

SIZES = (64, 96, 128, 192)
CSP = "default-src 'none'; img-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; form-action 'none'"
COOKIE = "clearset_review"
MAP_POINTS = 30_000  # drawn on the map page; a region selects among all the images
TITLES = {"label_issues": "Label issues", "duplicates": "Duplicates and leakage", "outliers": "Outliers",
          "multilabel": "Multi-label candidates", "selection": "Images in the selected region"}


def _env() -> Environment:
    env = Environment(loader=PackageLoader("clearset", "review/templates"), autoescape=True)
    env.globals["titles"] = TITLES
    return env


class ReviewState:
    """What the app holds: the findings, the decision log, the features for neighbour search (lazily)."""

    def __init__(self, ws: Workspace, token: str):
        self.ws = ws
        self.token = token
        self.findings = Findings(ws)
        self.dir = review_dir(ws)
        self.log = open_log(self.dir)
        self._features: np.ndarray | None = None
        self._lock = threading.Lock()
        self.map = MapJob(ws)

    def features(self) -> np.ndarray:
        with self._lock:
            if self._features is None:
                _, x = self.ws.load_features()
                self._features = l2_normalise(x)
            return self._features

    def neighbours(self, index: int, k: int) -> list[dict]:
        f = self.features()
        sims = f @ f[index]
        sims[index] = -np.inf
        k = min(k, len(sims) - 1)
        top = np.argpartition(-sims, k)[:k] if k < len(sims) else np.arange(len(sims))
        top = top[np.argsort(-sims[top], kind="stable")]
        fd = self.findings
        return [{"index": int(j), "label": int(fd.labels[j]), "class": fd.class_name(int(fd.labels[j])),
                 "split": str(fd.splits[j]), "similarity": round(float(sims[j]), 4)} for j in top]

    def thumbnail(self, index: int, size: int) -> bytes:
        path = self.dir / "thumbs" / str(size) / f"{index}.png"
        if path.exists():
            return path.read_bytes()
        from PIL import Image

        rgb = self.ws.store().load(index)
        im = Image.fromarray(rgb)
        scale = size / max(im.size)
        resample = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.BILINEAR
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), resample)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        data = buf.getvalue()
        write_bytes(path, data)
        return data


def _in_polygon(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule: which points of ``xy`` (N, 2) lie inside the closed polygon ``poly`` (M, 2)."""
    x, y = xy[:, 0].astype(np.float64), xy[:, 1].astype(np.float64)
    inside = np.zeros(len(xy), dtype=bool)
    for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (ay > y) != (by > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = ax + (y - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (x < at)
    return inside


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ParameterError(f"{name}={value[:40]!r}: not an integer") from None


def _count(request: Request, name: str, default: int) -> int:
    value = _int(request, name, default)
    return default if value is None else value


def _float(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        out = float(value)
    except ValueError:
        raise ParameterError(f"{name}={value[:40]!r}: not a number") from None
    if not np.isfinite(out):
        raise ParameterError(f"{name}={value[:40]!r}: not a finite number")
    return out


def create_app(workspace: str | Path | Workspace, token: str, *, allowed_hosts: list[str] | None = None) -> Starlette:
    ws = Workspace.of(workspace)
    state = ReviewState(ws, token)
    env = _env()

    def holds_token(request: Request) -> bool:
        sent = request.query_params.get("token") or request.cookies.get(COOKIE) or ""
        return hmac.compare_digest(sent.encode(), token.encode())

    def page(request: Request, name: str, **ctx) -> HTMLResponse:
        # the token reaches the page (and its script) only with a request that already holds it: the URL
        # `clearset review` printed, or the cookie that URL set; any other visitor can look but not write
        ok = holds_token(request)
        html = env.get_template(name).render(token=token if ok else "", classes=state.findings.classes,
                                             counts=state.findings.counts(), **ctx)
        resp = HTMLResponse(html, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                           "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"})
        if ok and request.query_params.get("token"):
            resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return resp

    def filters(request: Request) -> dict:
        label = _int(request, "label")
        if label is not None and label != -1:
            state.findings.check_class(label)
        split = request.query_params.get("split") or None
        return {"label": label, "split": split, "min_score": _float(request, "min"), "max_score": _float(request, "max")}

    def rows(pg) -> list[dict]:
        fd = state.findings
        out = []
        for r in pg.rows.to_dict("records"):
            cur = state.log.current(r["finding"])
            r["class"] = fd.class_name(int(r["label"]))
            if "suggested" in r:
                r["suggested_class"] = fd.class_name(int(r["suggested"]))
            if "partner_label" in r:
                r["partner_class"] = fd.class_name(int(r["partner_label"]))
            r["source"] = fd.sources[int(r["index"])]
            r["decision"] = cur
            r["seq"] = cur["seq"] if cur else 0
            out.append(r)
        return out

    async def index(request: Request):
        return page(request, "index.html", decisions=len(state.log), in_force=len(state.log.effective()),
                    versions=[p.name for p in version_folders(state.ws)])

    async def queue(request: Request):
        name = request.path_params["name"]
        f = filters(request)
        pg = state.findings.page(name, _count(request, "page", 1), _count(request, "per_page", 24), **f)
        return page(request, "queue.html", queue=name, pg=pg, items=rows(pg), f=f, splits=sorted(set(state.findings.splits)))

    async def queue_json(request: Request):
        name = request.path_params["name"]
        pg = state.findings.page(name, _count(request, "page", 1), _count(request, "per_page", 24),
                                 **filters(request))
        items = rows(pg)
        for r in items:
            r.pop("decision", None)
            for k, v in list(r.items()):
                if isinstance(v, np.generic):
                    r[k] = v.item()
                if isinstance(v, float) and not np.isfinite(v):
                    r[k] = None
        return JSONResponse({"queue": name, "total": pg.total, "page": pg.page, "pages": pg.pages, "items": items})

    async def similar(request: Request):
        i = state.findings.check_index(request.path_params["index"])
        k = max(1, min(_count(request, "k", 24), 200))
        return page(request, "similar.html", index=i, cls=state.findings.class_name(int(state.findings.labels[i])),
                    items=state.neighbours(i, k))

    async def map_page(request: Request):
        state.map.start()
        return page(request, "map.html", state_=state.map.state)

    async def map_json(request: Request):
        job = state.map
        job.start()
        if job.coords is None:
            return JSONResponse({"state": job.state, "error": job.error})
        xy = job.coords
        n = len(xy)
        shown = np.sort(np.random.default_rng(0).choice(n, MAP_POINTS, replace=False)) if n > MAP_POINTS else np.arange(n)
        fd = state.findings
        return JSONResponse({"state": "ready", "n": n, "shown": len(shown),
                             "x": np.round(xy[shown, 0], 3).tolist(), "y": np.round(xy[shown, 1], 3).tolist(),
                             "label": fd.labels[shown].tolist(), "flag": fd.flags()[shown].tolist(),
                             "index": shown.tolist(), "classes": fd.classes, "queues": list(QUEUES)})

    async def region(request: Request):
        if state.map.coords is None:
            raise ParameterError("the map is still being computed; open /map and wait for it")
        xy = state.map.coords
        poly = request.query_params.get("poly")
        if poly:  # a lasso: x1,y1,x2,y2,... in map coordinates
            try:
                pts = np.array([float(v) for v in poly.split(",")], dtype=np.float64)
            except ValueError:
                raise ParameterError("poly must be comma-separated numbers x1,y1,x2,y2,...") from None
            if len(pts) < 6 or len(pts) % 2 or len(pts) > 4000 or not np.isfinite(pts).all():
                raise ParameterError("poly needs 3 to 2000 finite points (x1,y1,x2,y2,...)")
            inside = np.flatnonzero(_in_polygon(xy, pts.reshape(-1, 2)))
            box_q = f"poly={poly}"
        else:
            got = [_float(request, k) for k in ("x0", "x1", "y0", "y1")]
            box = [v for v in got if v is not None]
            if len(box) != 4:
                raise ParameterError("a region needs x0, x1, y0 and y1 (map coordinates), or poly")
            x0, x1, y0, y1 = box
            inside = np.flatnonzero((xy[:, 0] >= min(x0, x1)) & (xy[:, 0] <= max(x0, x1))
                                    & (xy[:, 1] >= min(y0, y1)) & (xy[:, 1] <= max(y0, y1)))
            box_q = f"x0={x0}&x1={x1}&y0={y0}&y1={y1}"
        per = 48
        pg_no = _count(request, "page", 1)
        if pg_no < 1:
            raise ParameterError("page must be >= 1")
        chosen = inside[(pg_no - 1) * per: pg_no * per]
        import pandas as pd

        from .findings import Page

        rows_df = pd.DataFrame([state.findings.image_row(int(i)) for i in chosen]) if len(chosen) else \
            pd.DataFrame(columns=["finding", "index", "score", "label", "split"])
        pg = Page("selection", rows_df, len(inside), pg_no, per)
        return page(request, "queue.html", queue="selection", pg=pg, items=rows(pg), f={}, splits=[], box=box_q)

    async def neighbours(request: Request):
        i = state.findings.check_index(request.path_params["index"])
        k = max(1, min(_count(request, "k", 8), 200))
        return JSONResponse({"index": i, "neighbours": state.neighbours(i, k)})

    async def image(request: Request):
        i = state.findings.check_index(request.path_params["index"])
        size = _int(request, "size", 96)
        if size not in SIZES:
            raise ParameterError(f"size={size}: use one of {', '.join(map(str, SIZES))}")
        return Response(state.thumbnail(i, size), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})

    async def body(request: Request) -> dict:
        sent = request.headers.get("x-clearset-token", "")
        if not hmac.compare_digest(sent.encode(), token.encode()):
            raise PermissionError("missing or wrong session token: open the URL `clearset review` printed")
        if "application/json" not in request.headers.get("content-type", ""):
            raise ParameterError("send the body as JSON (Content-Type: application/json)")
        raw = await request.body()
        if len(raw) > 1 << 20:
            raise ParameterError("request body too large")
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise ParameterError("malformed JSON body") from None
        if not isinstance(data, dict):
            raise ParameterError("the JSON body must be an object")
        return data

    def decision_for(row, action: str, data: dict) -> dict:
        index = int(row["index"])
        item = {"finding": row["finding"], "action": action, "index": index, "old": int(state.findings.labels[index])}
        if "expect" in data:
            if not isinstance(data["expect"], int) or isinstance(data["expect"], bool):
                raise ParameterError("expect: the seq of the decision you saw (an integer, 0 for none)")
            item["expect"] = data["expect"]
        if action == "relabel":
            if "label" not in data:
                raise ParameterError("relabel needs a 'label' (class number)")
            item["new"] = state.findings.check_class(data["label"])
        elif action == "drop" and "partner" in row and data.get("index") is not None:
            which = data["index"]
            if which not in (int(row["index"]), int(row["partner"])):
                raise ParameterError(f"index {which!r}: a duplicate pair's drop names one of its two images")
            item["index"] = int(which)
            item["old"] = int(state.findings.labels[int(which)])
        return item

    async def decide(request: Request):
        data = await body(request)
        action = data.get("action")
        if action not in ("relabel", "keep", "drop", "ambiguous"):
            raise ParameterError("action must be one of relabel, keep, drop, ambiguous")
        row = state.findings.find(data.get("finding", ""))
        recs = state.log.decide([decision_for(row, action, data)])
        return JSONResponse({"decision": recs[0]})

    async def bulk(request: Request):
        data = await body(request)
        action = data.get("action")
        if action not in ("accept", "keep", "drop"):
            raise ParameterError("bulk action must be accept (the suggested label), keep or drop")
        name = data.get("queue")
        if name not in QUEUES:
            raise ParameterError(f"queue {str(name)[:40]!r}: one of {', '.join(QUEUES)}")
        label = data.get("label")
        if label is not None:
            label = state.findings.check_class(label)
        try:
            lo = None if data.get("min") is None else float(data["min"])
            hi = None if data.get("max") is None else float(data["max"])
        except (TypeError, ValueError):
            raise ParameterError("min and max must be numbers") from None
        df = state.findings.select(name, label=label, split=data.get("split") or None, min_score=lo, max_score=hi)
        if action == "accept" and "suggested" not in df:
            raise ParameterError(f"accept needs a suggested label; the {name} queue has none (use keep or drop)")
        items = []
        for r in df.to_dict("records"):
            item = {"finding": r["finding"], "index": int(r["index"]), "old": int(r["label"])}
            if action == "accept":
                items.append({**item, "action": "relabel", "new": int(r["suggested"])})
            else:
                items.append({**item, "action": action})
        recs = state.log.decide(items)
        return JSONResponse({"decided": len(recs)})

    async def undo(request: Request):
        data = await body(request)
        finding = data.get("finding")
        if finding is not None:
            state.findings.find(finding)
        rec = state.log.undo(finding)
        return JSONResponse({"undone": rec})

    async def apply(request: Request):
        await body(request)
        return JSONResponse(apply_review(ws, state.findings, state.log))

    async def on_user_error(request: Request, exc: Exception):
        if isinstance(exc, Conflict):
            return JSONResponse({"error": str(exc), "current": exc.current}, status_code=409)
        if isinstance(exc, PermissionError):
            return _error(str(exc), 403)
        return _error(str(exc), 404 if isinstance(exc, NotFound) else 400)

    static = Path(__file__).parent / "static"
    routes = [
        Route("/", index), Route("/queue/{name}", queue), Route("/similar/{index:int}", similar),
        Route("/image/{index:int}.png", image), Route("/api/queue/{name}", queue_json),
        Route("/api/neighbours/{index:int}", neighbours),
        Route("/map", map_page), Route("/api/map", map_json), Route("/region", region),
        Route("/api/decide", decide, methods=["POST"]), Route("/api/bulk", bulk, methods=["POST"]),
        Route("/api/undo", undo, methods=["POST"]), Route("/api/apply", apply, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] if allowed_hosts else []
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={ClearsetError: on_user_error, PermissionError: on_user_error})
    app.state.review = state
    return app
