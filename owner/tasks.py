"""
The owner layer's background job (lib/jobs.py runs it on the worker): every minute, the customers'
unanswered questions that have no vector yet are embedded by multilingual-e5-small and stored
(owner/unanswered.py's `embed_waiting`), so the owner's "Unanswered questions" page groups stored
vectors instead of embedding up to a thousand questions while the owner waits.
"""

from __future__ import annotations

import logging

from lib.jobs import app
from owner import unanswered

logger = logging.getLogger(__name__)

# At most this many questions a run (ten batches): a backlog is worked off a minute at a time.
MOST_PER_RUN = 2000


@app.periodic(cron="* * * * *")
@app.task(name="owner.embed_unanswered", queueing_lock="owner.embed_unanswered")
def embed_unanswered(timestamp: int) -> None:
    """Embed the unanswered questions that have no vector yet (`unanswered.embed_waiting`)."""
    done = unanswered.embed_waiting(MOST_PER_RUN)
    if done:
        logger.info("Embedded %s unanswered question(s) for the owners' page", done)
