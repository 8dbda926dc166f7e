"""The channel gateway: one aiohttp server for the website widget, Facebook Messenger and X direct messages.

Inbound events become InboundMessage objects (channel adapters in bot.gateway.channels), are stored in a durable
inbox before the webhook is answered, and an InboxWorker passes each one exactly once to Rasa's private gateway
channel and delivers the replies through the same adapter. Run it with `python -m bot gateway`.
"""
