package service

// The CONFIG_* variables each service gives an application, named as the
// original named them (plus Redis, which it did not have). The services on
// a node and their development stand-ins (internal/service/devel) both
// use these names.
const (
	// VarFiles is service.files' directory, kept across deploys.
	VarFiles = "CONFIG_FILES"
	// VarWritableRoot is service.writable_root's directory, whose files
	// are served after static/ and before the application.
	VarWritableRoot = "CONFIG_WRITABLE_ROOT"

	// PGPrefix starts the variables of service.postgresql and
	// service.postgis: CONFIG_PG_DBNAME, _USER, _PASSWORD, _HOST, _PORT,
	// _SQLALCHEMY.
	PGPrefix = "CONFIG_PG_"
	// MySQLPrefix starts service.mysql's: CONFIG_MYSQL_DBNAME, _USER,
	// _PASSWORD, _HOST, _PORT, _SQLALCHEMY.
	MySQLPrefix = "CONFIG_MYSQL_"
	// RedisPrefix starts service.redis's: CONFIG_REDIS_URL, _HOST, _PORT,
	// _USER, _PASSWORD, _PREFIX.
	RedisPrefix = "CONFIG_REDIS_"
)

// The suffixes of a database service's variables (after PGPrefix,
// MySQLPrefix or RedisPrefix).
const (
	VarDBName     = "DBNAME"
	VarUser       = "USER"
	VarPassword   = "PASSWORD"
	VarHost       = "HOST"
	VarPort       = "PORT"
	VarSQLAlchemy = "SQLALCHEMY"
	VarURL        = "URL"
	VarPrefix     = "PREFIX"
)
