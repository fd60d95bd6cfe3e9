-- Vault version 6: access tokens kept across processes, and a refresh journal
-- (issue 17).
--
-- Until version 5 an access token lived in one process's memory, so every
-- `sync-once` and every restart of the daemon spent a refresh, and with it a
-- single-use refresh token: each refresh opens a window in which the EHR has
-- rotated the token and we have not stored the new one. A process killed in
-- that window strands the patient. Keeping the access token removes most of
-- those refreshes.
--
-- access_token is sealed like the refresh token (AES-256-GCM with the token
-- key, same token_key_id). Its associated data also binds access_expires_at,
-- so an edited expiry makes the box fail to open rather than extend a token.
-- It is cleared whenever the enrollment changes (put_enrollment) or the
-- patient is marked for re-enrollment.
ALTER TABLE enrollment ADD COLUMN access_token BLOB;
ALTER TABLE enrollment ADD COLUMN access_expires_at TEXT;  -- UTC, as issued (expires_in from our clock)
ALTER TABLE enrollment ADD COLUMN access_scope TEXT;       -- the scopes the token response granted

-- The refresh journal. Written (and fsynced) before a refresh request leaves:
-- a hash of the refresh token being spent and when. The arrival of the new
-- token clears it in the transaction that stores the token, and an answer
-- that proves the token was not spent (an OAuth error) clears it too. An
-- entry that matches the stored token at the next refresh therefore means
-- that a process died with a refresh in flight: the token may have been
-- rotated away. It is tried once, and an invalid_grant then marks the
-- patient with needs_reauth_reason 'interrupted_refresh' (docs/admin/
-- operations.md, "When a patient needs re-enrollment").
ALTER TABLE enrollment ADD COLUMN refresh_started_at TEXT;
ALTER TABLE enrollment ADD COLUMN refresh_started_hash TEXT;  -- SHA-256 of the token, first 128 bits, hex

-- Why needs_reauth was set: 'invalid_grant' (the EHR refused the token),
-- 'interrupted_refresh' (refused after a refresh that never finished here).
-- NULL for rows marked by an older binary.
ALTER TABLE enrollment ADD COLUMN needs_reauth_reason TEXT;
