"""Agent log adapters: OTLP JSON (OTel GenAI, OpenInference), MCP JSON-RPC, keytrail native JSONL."""
