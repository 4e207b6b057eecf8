"""Temporary re-export; the lead rewrites importers and deletes this file."""

from sendwell.campaigns.service import CampaignError, claim_scheduled, create_campaign, due_scheduled  # noqa: F401
from sendwell.campaigns.service import get_campaign, list_campaigns, schedule_campaign  # noqa: F401
from sendwell.campaigns.service import set_campaign_status, update_campaign  # noqa: F401
from sendwell.db.models import CampaignStatus  # noqa: F401
from sendwell.delivery.claims import claim_sends, due_batches, new_claim_token, recover_expired_leases  # noqa: F401
from sendwell.delivery.deliverer import Deliverer, RetryPolicy, _mark_in_flight  # noqa: F401
from sendwell.delivery.planning import plan_campaign, queue_campaign, queued_batches  # noqa: F401
from sendwell.delivery.progress import campaign_status, finish_if_done, list_sends  # noqa: F401
from sendwell.delivery.runner import run_campaign  # noqa: F401
