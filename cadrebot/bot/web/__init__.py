"""The web channel: the cadres' and admins' console and the farmers' web chat.

A third renderer of the conversation core (like Telegram and the console): pages call the
core's desks (cases, knowledge, accounts) with the logged-in actor and render what they
return; the role checks happen in the core. See :mod:`cadrebot.bot.web.app`.
"""
