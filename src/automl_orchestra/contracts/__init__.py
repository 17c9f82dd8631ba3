"""The ground floor: what every layer shares -- the job and result messages, the reference grammar, the
output reference, the step error, the URL and path policy and the catalog of tools. Light (pydantic and the
standard library only) and importing nothing of the project above it."""
