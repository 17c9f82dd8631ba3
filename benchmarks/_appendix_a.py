"""The Learning Orchestra seed's Appendix A PyCaret code (lines 37-65), as the pycaret benchmark runs it on
both sides. Adapted only where PyCaret 3 changed: ``silent=True`` is gone. ``QUICK`` is the same pipeline
made small (three models, five tuning iterations) for ``--quick``."""

FULL = """
from pycaret import classification

clas = classification.setup(
    data=train,
    target='Survived',
    ignore_features=['Ticket'],
    numeric_features=['Age', 'Fare', 'Parch', 'Pclass', 'SibSp'],
    session_id = 1)

best = classification.compare_models(turbo = False)

best_tuned = classification.tune_model(
    best,
    n_iter = 100,
    choose_better=True)

best_tuned = classification.create_model(best_tuned)

score = classification.pull()
score.to_csv('score', sep='\\t', encoding='utf-8')

final_gbr = classification.finalize_model(best_tuned)

classification.save_model(final_gbr, 'titanic_pycaret')

response = None
"""

QUICK = FULL.replace("compare_models(turbo = False)", "compare_models(include=['lr', 'dt', 'rf'])").replace(
    "n_iter = 100", "n_iter = 5"
)
