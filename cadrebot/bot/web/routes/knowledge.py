"""Placeholder router (being written)."""

from fastapi import APIRouter, Depends

from cadrebot.bot.web.security import csrf_protect

router = APIRouter(dependencies=[Depends(csrf_protect)])
