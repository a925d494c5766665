-- flask-flows 0.1.0 (before migrations): the flows tables as its create_all() made them on sqlite.
-- Kept as data for tests/test_migrations.py, which upgrades a database built from it.

CREATE TABLE flows_authenticated_session (
	id INTEGER NOT NULL,
	key_hash VARCHAR(64) NOT NULL,
	user_id VARCHAR(64) NOT NULL,
	created DATETIME NOT NULL,
	last_seen DATETIME NOT NULL,
	expires DATETIME,
	ip_address VARCHAR(64) NOT NULL,
	user_agent VARCHAR(512) NOT NULL,
	password_failures INTEGER NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (key_hash)
);

CREATE INDEX ix_flows_authenticated_session_user_id ON flows_authenticated_session (user_id);

CREATE TABLE flows_flow (
	id INTEGER NOT NULL,
	slug VARCHAR(64) NOT NULL,
	name VARCHAR(128) NOT NULL,
	title VARCHAR(256) NOT NULL,
	designation VARCHAR(32) NOT NULL,
	authentication VARCHAR(32) NOT NULL,
	denied_action VARCHAR(32) NOT NULL,
	policy_engine_mode VARCHAR(32) NOT NULL,
	layout VARCHAR(32) NOT NULL,
	revision INTEGER NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (slug),
	CONSTRAINT flows_designation CHECK (designation IN ('authentication', 'authorization', 'invalidation', 'enrollment', 'unenrollment', 'recovery', 'stage_configuration')),
	CONSTRAINT flows_authentication CHECK (authentication IN ('none', 'require_authenticated', 'require_unauthenticated', 'require_superuser')),
	CONSTRAINT flows_denied_action CHECK (denied_action IN ('message', 'continue', 'message_continue')),
	CONSTRAINT flows_flow_policy_mode CHECK (policy_engine_mode IN ('any', 'all'))
);

CREATE TABLE flows_flow_token (
	id INTEGER NOT NULL,
	token_hash VARCHAR(64) NOT NULL,
	flow_slug VARCHAR(64) NOT NULL,
	"plan" JSON NOT NULL,
	user_id VARCHAR(64),
	address_hash VARCHAR(64) NOT NULL,
	activate_user BOOLEAN NOT NULL,
	created DATETIME NOT NULL,
	expires DATETIME NOT NULL,
	used_at DATETIME,
	PRIMARY KEY (id),
	UNIQUE (token_hash)
);

CREATE INDEX ix_flows_flow_token_address_hash ON flows_flow_token (address_hash);

CREATE INDEX ix_flows_flow_token_user_id ON flows_flow_token (user_id);

CREATE TABLE flows_group (
	id INTEGER NOT NULL,
	name VARCHAR(128) NOT NULL,
	is_superuser BOOLEAN NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (name)
);

CREATE TABLE flows_invitation (
	id INTEGER NOT NULL,
	token_hash VARCHAR(64) NOT NULL,
	flow_slug VARCHAR(64),
	expires DATETIME,
	single_use BOOLEAN NOT NULL,
	used_at DATETIME,
	fixed_data JSON NOT NULL,
	created_by VARCHAR(64),
	created DATETIME NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (token_hash)
);

CREATE TABLE flows_policy (
	id INTEGER NOT NULL,
	name VARCHAR(128) NOT NULL,
	type VARCHAR(64) NOT NULL,
	config JSON NOT NULL,
	execution_logging BOOLEAN NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (name)
);

CREATE TABLE flows_remembered_mfa (
	id INTEGER NOT NULL,
	key_hash VARCHAR(64) NOT NULL,
	user_id VARCHAR(64) NOT NULL,
	expires DATETIME NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (key_hash)
);

CREATE INDEX ix_flows_remembered_mfa_user_id ON flows_remembered_mfa (user_id);

CREATE TABLE flows_reputation_score (
	id INTEGER NOT NULL,
	kind VARCHAR(16) NOT NULL,
	"key" VARCHAR(255) NOT NULL,
	score INTEGER NOT NULL,
	updated DATETIME NOT NULL,
	expires DATETIME NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT flows_reputation_kind_key UNIQUE (kind, "key")
);

CREATE TABLE flows_stage (
	id INTEGER NOT NULL,
	name VARCHAR(128) NOT NULL,
	type VARCHAR(64) NOT NULL,
	config JSON NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (name)
);

CREATE TABLE flows_static_device (
	id INTEGER NOT NULL,
	user_id VARCHAR(64) NOT NULL,
	name VARCHAR(128) NOT NULL,
	confirmed BOOLEAN NOT NULL,
	created DATETIME NOT NULL,
	last_used DATETIME,
	PRIMARY KEY (id)
);

CREATE INDEX ix_flows_static_device_user_id ON flows_static_device (user_id);

CREATE TABLE flows_totp_device (
	id INTEGER NOT NULL,
	user_id VARCHAR(64) NOT NULL,
	name VARCHAR(128) NOT NULL,
	secret VARCHAR(128) NOT NULL,
	digits INTEGER NOT NULL,
	algorithm VARCHAR(16) NOT NULL,
	period INTEGER NOT NULL,
	confirmed BOOLEAN NOT NULL,
	last_step BIGINT NOT NULL,
	created DATETIME NOT NULL,
	last_used DATETIME,
	PRIMARY KEY (id)
);

CREATE INDEX ix_flows_totp_device_user_id ON flows_totp_device (user_id);

CREATE TABLE flows_user_consent (
	id INTEGER NOT NULL,
	user_id VARCHAR(64) NOT NULL,
	target VARCHAR(256) NOT NULL,
	permissions TEXT NOT NULL,
	expires DATETIME,
	created DATETIME NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT flows_user_consent_target UNIQUE (user_id, target)
);

CREATE INDEX ix_flows_user_consent_user_id ON flows_user_consent (user_id);

CREATE TABLE flows_binding (
	id INTEGER NOT NULL,
	flow_id INTEGER NOT NULL,
	stage_id INTEGER NOT NULL,
	"order" INTEGER NOT NULL,
	evaluate_on_plan BOOLEAN NOT NULL,
	re_evaluate_policies BOOLEAN NOT NULL,
	invalid_response_action VARCHAR(32) NOT NULL,
	policy_engine_mode VARCHAR(32) NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT flows_binding_flow_order UNIQUE (flow_id, "order"),
	FOREIGN KEY(flow_id) REFERENCES flows_flow (id) ON DELETE CASCADE,
	FOREIGN KEY(stage_id) REFERENCES flows_stage (id) ON DELETE RESTRICT,
	CONSTRAINT flows_invalid_response_action CHECK (invalid_response_action IN ('retry', 'restart', 'restart_with_context')),
	CONSTRAINT flows_binding_policy_mode CHECK (policy_engine_mode IN ('any', 'all'))
);

CREATE TABLE flows_group_membership (
	group_id INTEGER NOT NULL,
	user_id VARCHAR(64) NOT NULL,
	PRIMARY KEY (group_id, user_id),
	FOREIGN KEY(group_id) REFERENCES flows_group (id) ON DELETE CASCADE
);

CREATE INDEX ix_flows_group_membership_user_id ON flows_group_membership (user_id);

CREATE TABLE flows_static_token (
	id INTEGER NOT NULL,
	device_id INTEGER NOT NULL,
	lookup VARCHAR(8) NOT NULL,
	secret_hash VARCHAR(256) NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT flows_static_token_lookup UNIQUE (device_id, lookup),
	FOREIGN KEY(device_id) REFERENCES flows_static_device (id) ON DELETE CASCADE
);

CREATE INDEX ix_flows_static_token_device_id ON flows_static_token (device_id);

CREATE TABLE flows_policy_binding (
	id INTEGER NOT NULL,
	flow_id INTEGER,
	binding_id INTEGER,
	policy_id INTEGER,
	group_id INTEGER,
	user_id VARCHAR(64),
	"order" INTEGER NOT NULL,
	enabled BOOLEAN NOT NULL,
	negate BOOLEAN NOT NULL,
	failure_result BOOLEAN NOT NULL,
	timeout INTEGER NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT flows_policy_binding_one_target CHECK ((flow_id IS NULL) != (binding_id IS NULL)),
	CONSTRAINT flows_policy_binding_one_subject CHECK ((CASE WHEN policy_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN group_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN user_id IS NULL THEN 0 ELSE 1 END) = 1),
	FOREIGN KEY(flow_id) REFERENCES flows_flow (id) ON DELETE CASCADE,
	FOREIGN KEY(binding_id) REFERENCES flows_binding (id) ON DELETE CASCADE,
	FOREIGN KEY(policy_id) REFERENCES flows_policy (id) ON DELETE CASCADE,
	FOREIGN KEY(group_id) REFERENCES flows_group (id) ON DELETE CASCADE
);

CREATE INDEX ix_flows_policy_binding_binding_id ON flows_policy_binding (binding_id);

CREATE INDEX ix_flows_policy_binding_flow_id ON flows_policy_binding (flow_id);
