"""Model registry (``weights/manifest.json``), network builders and safe weight loading."""
