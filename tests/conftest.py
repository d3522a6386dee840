import os

# Tests never need a display; pytest-qt creates its QApplication offscreen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
