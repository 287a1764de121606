"""The Lua scripts that change an approval request atomically: a vote, an expiry, and the
state of its resume. Each opens with its interface (KEYS, ARGV, what it returns); the
strings they share with Python are bot.storage.store's enums (Action) and
bot.core.approval's (Status, Resume)."""

from __future__ import annotations

from typing import Final

CAST_SCRIPT: Final = """
-- KEYS[1]: the approval hash
-- KEYS[2]: the pending sorted set
-- KEYS[3], KEYS[4], KEYS[5]: the expiring, reminders and cards-due sorted sets
-- KEYS[6]: the jobs stream: a vote that changed something enqueues its announcement (the
--          audit, the card), and the vote that completes the request its resume
-- ARGV[1]: approval id
-- ARGV[2]: what the vote does: 'approve' (one approval towards each call's quorum),
--          'deny' (a veto: decides each call at once) or 'edit' (new arguments for one
--          call, and the editor's approval of them; earlier approvals of that call lapse)
-- ARGV[3]: the vote, JSON {user_id, at, reason}; ``at`` is text, which cjson keeps exact
-- ARGV[4]: the calls voted on, JSON [[index (0-based), quorum], ...]
-- ARGV[5]: the revision the voter saw, or '' when it does not matter: a veto only (an
--          approval or an edit without one is refused as stale: nobody approves arguments
--          they may not have seen)
-- ARGV[6]: with 'edit', the edit as JSON text (stored as is: cjson would round its numbers)
-- ARGV[7]: the calls' decisions as the caller read them, used when the hash has none yet
--          (a request stored by a bot version before per-call decisions)
-- ARGV[8]: the announcement's data, JSON (who, why, the audit events; see
--          Assistant.announce_job), or '' to announce nothing
-- returns {'missing'} | {'decided', status, decision JSON} (the request was decided before)
--       | {'stale', revision} (someone edited the arguments since the voter looked)
--       | {'cast', outcomes JSON, decisions JSON, request status}
--   outcomes, one per call voted on: 'counted' (short of its quorum), 'decided' (this vote
--   decided the call), 'voted' (this person had approved it already), 'closed' (decided before)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing'}
end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' then
  return {'decided', status, redis.call('HGET', KEYS[1], 'decision') or ''}
end
local revision = redis.call('HGET', KEYS[1], 'revision') or '0'
if (ARGV[5] == '' and ARGV[2] ~= 'deny') or (ARGV[5] ~= '' and ARGV[5] ~= revision) then
  return {'stale', revision}
end
local decisions = cjson.decode(redis.call('HGET', KEYS[1], 'decisions') or ARGV[7])
local vote = cjson.decode(ARGV[3])
local outcomes = {}
local changed = false
for i, target in ipairs(cjson.decode(ARGV[4])) do
  local call = decisions[target[1] + 1]
  local outcome = 'closed'
  if call ~= nil and call.status == 'pending' then
    if ARGV[2] == 'deny' then
      call.status, call.user_id, call.at, call.reason = 'denied', vote.user_id, vote.at, vote.reason
      outcome = 'decided'
    else
      local votes = call.votes
      if ARGV[2] == 'edit' then
        call.edit = ARGV[6]
        votes = {}
        redis.call('HINCRBY', KEYS[1], 'revision', 1)
      end
      outcome = 'counted'
      for _, earlier in ipairs(votes) do
        if earlier.user_id == vote.user_id then
          outcome = 'voted'
        end
      end
      if outcome == 'counted' then
        table.insert(votes, {user_id = vote.user_id, at = vote.at})
        call.votes = votes
        if #votes >= target[2] then
          call.status, call.user_id, call.at = 'approved', vote.user_id, vote.at
          outcome = 'decided'
        end
      end
    end
    changed = changed or outcome ~= 'voted'
  end
  outcomes[i] = outcome
end
local approved, denied, pending = 0, 0, 0
for _, call in ipairs(decisions) do
  if call.status == 'approved' then
    approved = approved + 1
  elseif call.status == 'denied' then
    denied = denied + 1
  else
    pending = pending + 1
  end
end
local final = 'pending'
if pending == 0 then
  final = 'mixed'
  if denied == 0 then
    final = 'approved'
  elseif approved == 0 then
    final = 'denied'
  end
end
local encoded = cjson.encode(decisions)
if changed then
  redis.call('HSET', KEYS[1], 'decisions', encoded)
end
if changed and ARGV[8] ~= '' then
  local complete = '0'
  if final ~= 'pending' then
    complete = '1'
  end
  redis.call('XADD', KEYS[6], '*', 'kind', 'announce', 'target', ARGV[1], 'at', vote.at,
    'data', ARGV[8], 'outcomes', cjson.encode(outcomes), 'complete', complete)
end
if final ~= 'pending' then
  local decision = cjson.encode({status = final, user_id = vote.user_id, at = vote.at})
  redis.call('HSET', KEYS[1], 'status', final, 'decision', decision)
  for k = 2, 5 do
    redis.call('ZREM', KEYS[k], ARGV[1])
  end
  redis.call('XADD', KEYS[6], '*', 'kind', 'resume', 'target', ARGV[1], 'at', vote.at)
end
return {'cast', cjson.encode(outcomes), encoded, final}
"""

EXPIRE_SCRIPT: Final = """
-- KEYS[1]: the approval hash
-- KEYS[2..5]: the pending, expiring, reminders and cards-due sorted sets
-- KEYS[6]: the jobs stream
-- ARGV[1]: approval id
-- ARGV[2]: now, text (kept exact)
-- returns {'expired', decisions JSON} | {'gone'} (missing or decided: only unlisted)
local function unlist()
  for k = 2, 5 do
    redis.call('ZREM', KEYS[k], ARGV[1])
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'status') ~= 'pending' then
  unlist()
  return {'gone'}
end
local raw = redis.call('HGET', KEYS[1], 'decisions')
if not raw then
  return {'gone'}
end
local decisions = cjson.decode(raw)
for _, call in ipairs(decisions) do
  if call.status == 'pending' then
    call.status, call.at = 'expired', ARGV[2]
  end
end
local encoded = cjson.encode(decisions)
local decision = cjson.encode({status = 'expired', user_id = '', at = ARGV[2]})
redis.call('HSET', KEYS[1], 'status', 'expired', 'decision', decision, 'decisions', encoded)
unlist()
redis.call('XADD', KEYS[6], '*', 'kind', 'resume', 'target', ARGV[1], 'at', ARGV[2])
return {'expired', encoded}
"""

REQUEUE_RESUME_SCRIPT: Final = """
-- KEYS[1]: the approval hash
-- KEYS[2]: the jobs stream
-- ARGV[1]: approval id
-- ARGV[2]: now
-- A failed resume, retried: marked 'running', with a job, so that the retry reads the
-- conversation's history before sending anything (the failure may have come after Mistral
-- applied the decision: an append is not sent twice). Returns 0 if it was not failed.
if redis.call('HGET', KEYS[1], 'resume') ~= 'failed' then
  return 0
end
redis.call('HSET', KEYS[1], 'resume', 'running')
redis.call('XADD', KEYS[2], '*', 'kind', 'resume', 'target', ARGV[1], 'at', ARGV[2])
return 1
"""

BEGIN_RESUME_SCRIPT: Final = """
-- KEYS[1]: the approval hash
-- returns the resume state found; 'waiting' or 'running' (an attempt that died) become
-- 'running', any other state is left alone (the resume is done, or failed and not retried)
local found = redis.call('HGET', KEYS[1], 'resume')
if found == 'waiting' or found == 'running' then
  redis.call('HSET', KEYS[1], 'resume', 'running')
end
return found or ''
"""
