"""The ``h2o`` tool: H2O AutoML in a JVM per step, models stored as MOJOs where H2O gives one."""
