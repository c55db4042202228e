"""A project's dossier (live_api.routes.dossier) as CSV (one table, a `section` column) and as
a PDF a person can print: A4, Chinese text in WenQuanYi Micro Hei (Debian `fonts-wqy-microhei`,
installed by `make`), one section after the other, every engineer's evidence verdict."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

from fpdf import FPDF

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
CSV_COLUMNS = ("section", "engineer_id", "date", "item", "status", "detail")


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return "" if value is None else str(value)


def rows(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    """The dossier as (section, engineer, date, item, status, detail) rows."""
    out: list[tuple[str, ...]] = []
    p = doc["project"]
    period = doc["period"]
    out.append(("project", "", "", p["id"], p["region_code"], p["name"]))
    out.append(("period", "", _text(period["from"]), _text(period["to"]), "", period["timezone"]))
    for a in doc["assignments"]:
        out.append(
            ("assignment", a["engineer_id"], _text(a["start"]), a["role"], "", _text(a["end"]))
        )
    for e in doc["engineers"]:
        ev = e["evidence"]
        verdict = "ok" if ev["ok"] else f"broken at {ev.get('broken_at')}"
        detail = (
            f"{e['days_on_site']} days on site, {e['days_present']} present, "
            f"{e['records']} records, {ev['entries']} evidence entries"
        )
        out.append(("engineer", e["engineer_id"], _text(e["last_record"]), "", verdict, detail))
        for day in e["days_without_log"]:
            out.append(("day_without_log", e["engineer_id"], day, "", "", ""))
    for d in doc["attendance"]:
        present = "present" if d["present"] else "absent"
        out.append(("attendance", d["engineer_id"], d["date"], "", present, d["minutes_on_site"]))
    for r in doc["records"]:
        out.append(("record", r["engineer_id"], _text(r["local_date"]), r["kind"], "", r["text"]))
    for n in doc["notices"]:
        status = n["status"] + (" overdue" if n["overdue"] else "")
        out.append(("notice", n["engineer_id"], _text(n["deadline"]), n["id"], status, n["text"]))
    for a in doc["alerts"]:
        who = a["engineer_id"] or a["device_id"] or ""
        out.append(("alert", who, _text(a["ts"]), a["type"], a["status"], a["id"]))
    return [tuple(_text(v) for v in row) for row in out]


def as_csv(doc: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows(doc))
    return ("\ufeff" + buf.getvalue()).encode()  # the BOM: spreadsheet programs read UTF-8


class _Dossier(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("cjk", size=8)
        self.cell(0, 8, f"SiteWatch 监理调查档案 · 第 {self.page_no()} 页", align="C")


def as_pdf(doc: dict[str, Any]) -> bytes:
    pdf = _Dossier(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("cjk", fname=str(FONT), collection_font_number=0)
    pdf.add_page()
    p = doc["project"]
    pdf.set_font("cjk", size=16)
    pdf.multi_cell(0, 9, f"{p['name']}（{p['id']}）监理调查档案", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=10)
    period = doc["period"]
    pdf.multi_cell(
        0,
        6,
        f"区域 {p['region_code']} · 期间 {_text(period['from'])} 至 {_text(period['to'])}"
        f"（{period['timezone']}）· 生成于 {_text(doc['generated_at'])[:19]}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    sections = {
        "assignment": "人员任命（总监/成员）",
        "engineer": "监理工程师与证据链校验",
        "day_without_log": "在场无日志的日期",
        "notice": "整改通知",
        "alert": "告警",
        "record": "执业记录",
        "attendance": "出勤",
    }
    table = rows(doc)
    for section, title in sections.items():
        items = [r for r in table if r[0] == section]
        pdf.ln(3)
        pdf.set_font("cjk", size=12)
        pdf.multi_cell(0, 7, f"{title}（{len(items)}）", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("cjk", size=8)
        for _, who, date, item, status, detail in items:
            line = " · ".join(v for v in (who, date, item, status, detail[:200]) if v)
            pdf.multi_cell(0, 4.5, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
