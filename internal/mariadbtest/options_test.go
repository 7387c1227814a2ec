package mariadbtest

import "testing"

func TestWithBinlog(t *testing.T) {
	srv := Start(t, WithBinlog())
	db := open(t, srv.CreateDatabase(t, "binlog"))
	var logBin int
	var format, image string
	if err := db.QueryRow("SELECT @@log_bin, @@binlog_format, @@binlog_row_image").Scan(&logBin, &format, &image); err != nil {
		t.Fatal(err)
	}
	if logBin != 1 || format != "ROW" || image != "FULL" {
		t.Errorf("log_bin=%d binlog_format=%s binlog_row_image=%s, want 1 ROW FULL", logBin, format, image)
	}
	if _, err := db.Exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	srv.Kill(t)
	if err := db.Ping(); err == nil {
		t.Fatal("the server still answers after Kill")
	}
	srv.Restart(t)
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil {
		t.Fatalf("after Restart: %v", err)
	}
	if n != 1 {
		t.Errorf("after Restart the table has %d rows, want the 1 committed before the kill", n)
	}
}

func TestDefaultHasNoBinlog(t *testing.T) {
	srv := Start(t)
	db := open(t, srv.RootDSN(""))
	var logBin int
	if err := db.QueryRow("SELECT @@log_bin").Scan(&logBin); err != nil {
		t.Fatal(err)
	}
	if logBin != 0 {
		t.Errorf("log_bin = %d on a server started without options, want 0 as before", logBin)
	}
}
