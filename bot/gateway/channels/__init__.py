"""One module per channel, each a ChannelAdapter: widget (website live chat), facebook (Messenger), twitter (X
direct messages)."""
