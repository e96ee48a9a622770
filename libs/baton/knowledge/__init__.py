"""What a business tells its bot: persona, opening hours, FAQ, links; and what it learned.

Pure code only: the models of a number's knowledge base, opening-hours arithmetic, and the
masking applied to retrieved examples before they reach a model. The store keeps edits made
through the console; the bot reads them with the numbers file as the default.
"""

from baton.knowledge.hours import DayHours, Holiday, OpeningHours, OpenStatus, status_at
from baton.knowledge.model import FaqItem, Knowledge, Link
from baton.knowledge.privacy import mask_personal_data

__all__ = [
    "DayHours",
    "FaqItem",
    "Holiday",
    "Knowledge",
    "Link",
    "OpenStatus",
    "OpeningHours",
    "mask_personal_data",
    "status_at",
]
