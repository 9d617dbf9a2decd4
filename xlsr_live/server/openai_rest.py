"""OpenAI-compatible REST endpoints (placeholder)."""


class OpenAIRoutes:
    def __init__(self, ctx):
        self.ctx = ctx

    def routes(self):
        return []
