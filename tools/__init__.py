"""Maintainer tools: generate the labs from the solutions (``make_labs``), run the workshop (``run_workshop``)."""
