"""SageMaker Debugger without smdebug: its tensor files (``tfevents``), a trial reader (``trial``), the built-in
rules (``rules``, ``report``) and the ``sagemaker-debugger-rules`` image that evaluates one (``__main__``)."""
