"""Local web UI for inpainting (FastAPI + a static page); imports inpainting.api only."""
