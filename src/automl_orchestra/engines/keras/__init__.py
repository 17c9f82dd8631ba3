"""The ``autokeras`` and ``keras`` tools: AutoKeras searches with trials in forked children
(``trial_process``), and hand-built Keras 3 models."""
