"""The e2e suite's tools: ``python tests/e2e/tools.py ensure`` finds or builds them (calico_component.local.tools)."""

from __future__ import annotations

import sys

from calico_component.local.tools import (
    BASE_TOOLS,
    CALICO_TOOLS,
    DEMO_TOOLS,
    TOOL_NAMES,
    ToolError,
    cache_root,
    creates_with_client_side_create,
    describe,
    ensure,
    find,
    group_of,
    groups,
    main,
)

__all__ = [
    "BASE_TOOLS", "CALICO_TOOLS", "DEMO_TOOLS", "TOOL_NAMES", "ToolError", "cache_root",
    "creates_with_client_side_create", "describe", "ensure", "find", "group_of", "groups", "main",
]

if __name__ == "__main__":
    sys.exit(main())
