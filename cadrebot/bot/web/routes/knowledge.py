"""The knowledge console (admins only, checked by the knowledge desk): the documents, a
document's passages, uploads and removals with the build's progress, hit tests, corrections
and the everyday-words lexicon.

Everything is decided by :class:`~cadrebot.handlers.knowledge_desk.KnowledgeDesk`; this module
turns requests into its calls and its results into pages. A build runs in the background:
the page that started it polls its progress with htmx (and works without: a reload shows
the same bar). After a change the browser is redirected (303) to a page naming the build,
never to a message taken from the URL.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cadrebot.bot.web.context import Staff, StaffDep, WebDep
from cadrebot.bot.web.rendering import render
from cadrebot.bot.web.security import csrf_protect
from cadrebot.handlers.access import NotFound
from cadrebot.handlers.admin import AdminError
from cadrebot.handlers.knowledge_desk import (
    MAX_ANSWER_CHARS,
    MAX_QUESTION_CHARS,
    MAX_SOURCE_CHARS,
    BuildStatus,
    KnowledgeDesk,
)
from cadrebot.handlers.masking import mask_sensitive
from cadrebot.handlers.ports import Correction

router = APIRouter(dependencies=[Depends(csrf_protect)])

_DONE = {
    "added": "更正已保存，正在更新索引；索引更新完成后，同一问题即按更正回答。",
    "edited": "更正已修改，正在更新索引。",
    "removed": "更正已删除，正在更新索引。",
    "lexicon": "词表已保存并已生效。",
}
_LIMITS = {
    "question": MAX_QUESTION_CHARS,
    "answer": MAX_ANSWER_CHARS,
    "source": MAX_SOURCE_CHARS,
}


def _desk(web: WebDep) -> KnowledgeDesk:
    return web.stack.knowledge_desk


def _job_status(desk: KnowledgeDesk, staff: Staff, job: str | None) -> BuildStatus | None:
    """The build a redirect names (None when this process does not know it)."""
    if not job or len(job) > 64:
        return None
    try:
        return desk.build_status(staff.user, job)
    except NotFound:
        return None


def _whole_number(text: str | None, default: int, high: int) -> int:
    return min(int(text), high) if text and text.isdigit() and len(text) <= 6 else default


# --------------------------------------------------------------------------- documents


async def _documents_page(
    request: Request,
    desk: KnowledgeDesk,
    staff: Staff,
    *,
    job: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    view = await run_in_threadpool(desk.documents, staff.user)
    named = await run_in_threadpool(_job_status, desk, staff, job)
    context = {
        "view": view,
        "build": named or view.build,
        "error": error,
        "max_mb": f"{view.max_upload_bytes / (1024 * 1024):.0f}",
    }
    return render(request, "knowledge/index.html", context, status_code=status_code)


@router.get("/knowledge")
async def documents(
    request: Request, web: WebDep, staff: StaffDep, job: str | None = None
) -> Response:
    return await _documents_page(request, _desk(web), staff, job=job)


def _receive(source: IO[bytes], target: Path, limit: int) -> int:
    """Copy the received file (at most ``limit`` + 1 bytes: enough to know it is too big)."""
    copied = 0
    with target.open("wb") as out:
        while copied <= limit:
            block = source.read(min(1 << 20, limit + 1 - copied))
            if not block:
                break
            out.write(block)
            copied += len(block)
    return copied


@router.post("/knowledge/upload")
async def upload(
    request: Request,
    web: WebDep,
    staff: StaffDep,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    desk = _desk(web)
    name = file.filename if file is not None else None
    try:
        # The role, the name and the type first: nothing is kept from a refused upload.
        await run_in_threadpool(desk.check_upload, staff.user, name, file.size if file else None)
        assert file is not None and name is not None
        with tempfile.TemporaryDirectory(prefix="cadrebot-upload-") as scratch:
            received = Path(scratch) / "received"
            size = await run_in_threadpool(_receive, file.file, received, desk.max_upload_bytes)
            await run_in_threadpool(desk.check_upload, staff.user, name, size)
            started = await run_in_threadpool(desk.upload, staff.user, name, received)
    except AdminError as refusal:
        return await _documents_page(request, desk, staff, error=refusal.message, status_code=400)
    finally:
        if file is not None:
            await file.close()
    return RedirectResponse(f"/knowledge?job={started.job_id}", status_code=303)


@router.post("/knowledge/rebuild")
async def rebuild(web: WebDep, staff: StaffDep) -> Response:
    started = await run_in_threadpool(_desk(web).rebuild, staff.user)
    return RedirectResponse(f"/knowledge?job={started.job_id}", status_code=303)


@router.get("/knowledge/remove")
async def confirm_removal(
    request: Request, web: WebDep, staff: StaffDep, file: str = ""
) -> Response:
    view = await run_in_threadpool(_desk(web).documents, staff.user)
    document = next((d for d in view.documents if d.source == file and d.in_folder), None)
    if document is None or document.curated:
        raise NotFound("知识库中没有这份文件。")
    return render(request, "knowledge/remove.html", {"document": document})


@router.post("/knowledge/remove")
async def remove(
    request: Request,
    web: WebDep,
    staff: StaffDep,
    file: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    desk = _desk(web)
    try:
        started = await run_in_threadpool(desk.remove, staff.user, file)
    except AdminError as refusal:
        return await _documents_page(request, desk, staff, error=refusal.message, status_code=400)
    return RedirectResponse(f"/knowledge?job={started.job_id}", status_code=303)


@router.get("/knowledge/build/{job}")
async def build_progress(request: Request, web: WebDep, staff: StaffDep, job: str) -> Response:
    """The progress bar of one build: polled by the page while the build runs."""
    status = await run_in_threadpool(_desk(web).build_status, staff.user, job[:64])
    if not request.headers.get("HX-Request"):
        return render(request, "knowledge/build.html", {"build": status})
    response = render(request, "knowledge/_build.html", {"build": status})
    if status.finished:
        # The build is over: reload the page polling it, so its lists show the new index.
        response.headers["HX-Refresh"] = "true"
    return response


@router.get("/knowledge/doc/{doc_id}")
async def document(request: Request, web: WebDep, staff: StaffDep, doc_id: str) -> Response:
    view = await run_in_threadpool(_desk(web).chunks, staff.user, doc_id)
    return render(request, "knowledge/document.html", {"view": view})


@router.get("/knowledge/search")
async def hit_test(
    request: Request, web: WebDep, staff: StaffDep, q: str = "", k: str | None = None
) -> Response:
    desk = _desk(web)
    top_k = _whole_number(k, 5, 20)
    result, error = None, None
    question = q[: MAX_QUESTION_CHARS * 2]
    try:
        if question.strip():
            result = await run_in_threadpool(desk.hit_test, staff.user, question, top_k)
        else:
            await run_in_threadpool(desk.documents, staff.user)  # the role check
    except AdminError as refusal:
        error = refusal.message
    context = {"q": question, "k": top_k, "result": result, "error": error}
    return render(request, "knowledge/search.html", context, status_code=400 if error else 200)


# --------------------------------------------------------------------------- corrections


async def _corrections_page(
    request: Request,
    desk: KnowledgeDesk,
    staff: Staff,
    *,
    form: dict[str, Any] | None = None,
    error: str | None = None,
    done: str | None = None,
    job: str | None = None,
    status_code: int = 200,
) -> Response:
    listed = await run_in_threadpool(desk.corrections, staff.user)
    context = {
        "corrections": listed,
        "form": form or {},
        "error": error,
        "done": _DONE.get(done or ""),
        "build": await run_in_threadpool(_job_status, desk, staff, job),
        "limits": _LIMITS,
    }
    return render(request, "knowledge/corrections.html", context, status_code=status_code)


@router.get("/knowledge/corrections")
async def corrections(
    request: Request,
    web: WebDep,
    staff: StaffDep,
    exchange: str | None = None,
    question: str | None = None,
    done: str | None = None,
    job: str | None = None,
) -> Response:
    """The corrections, and the form for a new one: filled in from a logged question
    (``exchange``, the log's 写更正) or with a question (the most frequent unanswered)."""
    desk = _desk(web)
    form: dict[str, Any] = {}
    if exchange and exchange.isdigit() and len(exchange) < 19:
        draft = await run_in_threadpool(desk.correction_draft, staff.user, int(exchange))
        form = {"question": draft.question, "reply": draft.reply}
    elif question:
        form = {"question": question[:MAX_QUESTION_CHARS]}
    return await _corrections_page(request, desk, staff, form=form, done=done, job=job)


def _typed_again(question: str, answer: str, source: str) -> dict[str, str]:
    """A refused correction form's fields as shown again: what was typed, but never an ID or
    phone number in full (the refusal is often that the answer carries one)."""
    typed = {"question": question, "answer": answer, "source": source}
    return {name: mask_sensitive(value) for name, value in typed.items()}


@router.post("/knowledge/corrections")
async def add_correction(
    request: Request,
    web: WebDep,
    staff: StaffDep,
    question: Annotated[str, Form(max_length=2000)] = "",
    answer: Annotated[str, Form(max_length=5000)] = "",
    source: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    desk = _desk(web)
    try:
        saved = await run_in_threadpool(desk.add_correction, staff.user, question, answer, source)
    except AdminError as refusal:
        form = _typed_again(question, answer, source)
        return await _corrections_page(
            request, desk, staff, form=form, error=refusal.message, status_code=400
        )
    return RedirectResponse(
        f"/knowledge/corrections?done=added&job={saved.job_id}", status_code=303
    )


async def _correction_page(
    request: Request,
    correction: Correction,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    values = form or {
        "question": correction.question,
        "answer": correction.answer,
        "source": correction.source,
    }
    context = {"correction": correction, "form": values, "error": error, "limits": _LIMITS}
    return render(request, "knowledge/correction.html", context, status_code=status_code)


@router.get("/knowledge/corrections/{correction_id}")
async def correction(
    request: Request, web: WebDep, staff: StaffDep, correction_id: str
) -> Response:
    found = await run_in_threadpool(_desk(web).correction, staff.user, correction_id[:64])
    return await _correction_page(request, found)


@router.post("/knowledge/corrections/{correction_id}")
async def edit_correction(
    request: Request,
    web: WebDep,
    staff: StaffDep,
    correction_id: str,
    question: Annotated[str, Form(max_length=2000)] = "",
    answer: Annotated[str, Form(max_length=5000)] = "",
    source: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    desk = _desk(web)
    try:
        saved = await run_in_threadpool(
            desk.edit_correction, staff.user, correction_id[:64], question, answer, source
        )
    except AdminError as refusal:
        current = await run_in_threadpool(desk.correction, staff.user, correction_id[:64])
        form = _typed_again(question, answer, source)
        return await _correction_page(
            request, current, form=form, error=refusal.message, status_code=400
        )
    return RedirectResponse(
        f"/knowledge/corrections?done=edited&job={saved.job_id}", status_code=303
    )


@router.post("/knowledge/corrections/{correction_id}/remove")
async def remove_correction(web: WebDep, staff: StaffDep, correction_id: str) -> Response:
    started = await run_in_threadpool(_desk(web).remove_correction, staff.user, correction_id[:64])
    return RedirectResponse(
        f"/knowledge/corrections?done=removed&job={started.job_id}", status_code=303
    )


# --------------------------------------------------------------------------- lexicon


@router.get("/knowledge/lexicon")
async def lexicon(
    request: Request, web: WebDep, staff: StaffDep, done: str | None = None
) -> Response:
    shown = await run_in_threadpool(_desk(web).lexicon, staff.user)
    context = {"lexicon": shown, "text": shown.text, "error": None, "done": _DONE.get(done or "")}
    return render(request, "knowledge/lexicon.html", context)


@router.post("/knowledge/lexicon")
async def save_lexicon(
    request: Request,
    web: WebDep,
    staff: StaffDep,
    text: Annotated[str, Form(max_length=1_000_000)] = "",
) -> Response:
    desk = _desk(web)
    try:
        await run_in_threadpool(desk.save_lexicon, staff.user, text)
    except AdminError as refusal:
        shown = await run_in_threadpool(desk.lexicon, staff.user)
        # The edit is shown again as typed, so it can be fixed rather than retyped.
        context = {"lexicon": shown, "text": text, "error": refusal.message, "done": None}
        return render(request, "knowledge/lexicon.html", context, status_code=400)
    return RedirectResponse("/knowledge/lexicon?done=lexicon", status_code=303)
