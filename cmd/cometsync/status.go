package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cometsync/cometsync/internal/binlog"
	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
	"github.com/cometsync/cometsync/internal/syncer"
)

// statusReport is `cometsync status --json`. Its top-level figures are
// totals over the streams (the checkpoint and the full-pass flags are the
// groups stream's, as before there were streams); streams has each one.
type statusReport struct {
	StatePath string `json:"state_path"`
	streamStatus
	Streams  map[string]streamStatus `json:"streams"`
	LastPass json.RawMessage         `json:"last_pass"`
	// Binlog is the feed's place, in binlog mode.
	Binlog *binlogStatus `json:"binlog,omitempty"`
	// names are the configured streams in pass order, units their integer
	// cursors' units ("" tells it from the magnitude).
	names []string
	units map[string]string
}

// binlogStatus is where the binlog feed is: the position every change
// before which is in CometChat, and the lag of the last acknowledged one.
type binlogStatus struct {
	Position   json.RawMessage `json:"position"`
	Readable   string          `json:"position_readable"`
	Backfilled bool            `json:"backfilled"`
	EventTime  *time.Time      `json:"event_time,omitempty"`
	AckedAt    *time.Time      `json:"acked_at,omitempty"`
	LagSeconds *float64        `json:"lag_seconds,omitempty"`
}

// streamStatus is one stream's part of the state.
type streamStatus struct {
	Checkpoint       json.RawMessage `json:"checkpoint"`
	FailedRows       int             `json:"failed_rows"`
	ParkedRows       int             `json:"parked_rows"`
	ResyncInProgress bool            `json:"resync_in_progress"`
	RescanInProgress bool            `json:"rescan_in_progress"`
	// Delivered is how many objects the state holds as delivered.
	Delivered int `json:"delivered"`
	// Deleted and DeletesHeld are the last pass's deletes made and held
	// back by the brake.
	Deleted     int `json:"deleted"`
	DeletesHeld int `json:"deletes_held"`
}

// readableCheckpoint shows a checkpoint for people: its cursor (an integer
// one with its UTC time beside it, in unit, "" to tell the unit from the
// magnitude) and its key; the JSON as is when it is not a position.
func readableCheckpoint(raw json.RawMessage, unit string) string {
	var p source.Position
	if err := json.Unmarshal(raw, &p); err != nil || p.Cursor.IsZero() {
		return string(raw)
	}
	if p.Key.IsZero() {
		return fmt.Sprintf("cursor %s (rows after it)", p.Cursor.Readable(unit))
	}
	return fmt.Sprintf("cursor %s, key %s", p.Cursor.Readable(unit), p.Key)
}

func newStatusCmd() *cobra.Command {
	var path string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --config FILE [--json]",
		Short: "Show the checkpoint, the failed rows and the last pass",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			st, err := readStatus(cmd, cfg)
			if err != nil {
				return err
			}
			return writeStatus(cmd.OutOrStdout(), st, asJSON)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "config file (YAML)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// openStateReadOnly opens the state without its lock, so status and errors
// work while a daemon runs. No state yet is not an error.
func openStateReadOnly(cfg *config.Config) (*state.Store, error) {
	st, err := state.Open(cfg.State.Path, state.Options{ReadOnly: true})
	if errors.Is(err, state.ErrNoState) {
		return nil, nil
	}
	if err != nil {
		return nil, failedErr(statePathError(cfg.State.Path, err))
	}
	return st, nil
}

func readStatus(cmd *cobra.Command, cfg *config.Config) (statusReport, error) {
	rep := statusReport{StatePath: cfg.State.Path, Streams: map[string]streamStatus{}, units: map[string]string{}}
	for _, ns := range cfg.Streams() {
		rep.names = append(rep.names, ns.Name)
		rep.units[ns.Name] = ns.Cursor.IntegerUnit
		rep.Streams[ns.Name] = streamStatus{}
	}
	st, err := openStateReadOnly(cfg)
	if err != nil || st == nil {
		return rep, err
	}
	defer st.Close()
	ctx := cmd.Context()
	for _, name := range rep.names {
		ss, err := readStreamStatus(ctx, st.Stream(name))
		if err != nil {
			return rep, failedErr(err)
		}
		rep.Streams[name] = ss
		rep.FailedRows += ss.FailedRows
		rep.ParkedRows += ss.ParkedRows
		rep.Delivered += ss.Delivered
		if name == config.StreamGroups {
			rep.Checkpoint, rep.ResyncInProgress, rep.RescanInProgress = ss.Checkpoint, ss.ResyncInProgress, ss.RescanInProgress
		}
	}
	if rep.LastPass, err = st.LastPass(ctx); err != nil {
		return rep, failedErr(err)
	}
	if fs, ok, err := st.Feed(ctx); err != nil {
		return rep, failedErr(err)
	} else if ok {
		bs := &binlogStatus{Position: fs.Position, Backfilled: fs.Backfilled, Readable: string(fs.Position)}
		var pos binlog.Position
		if json.Unmarshal(fs.Position, &pos) == nil {
			bs.Readable = pos.String()
		}
		if !fs.EventTime.IsZero() {
			lag := fs.AckedAt.Sub(fs.EventTime).Seconds()
			bs.EventTime, bs.AckedAt, bs.LagSeconds = &fs.EventTime, &fs.AckedAt, &lag
		}
		rep.Binlog = bs
	}
	var lp lastPass
	if rep.LastPass != nil && json.Unmarshal(rep.LastPass, &lp) == nil {
		for name, sr := range lp.Streams {
			if ss, ok := rep.Streams[name]; ok {
				ss.Deleted, ss.DeletesHeld = sr.Deleted, sr.DeletesHeld
				rep.Streams[name] = ss
				rep.Deleted += sr.Deleted
				rep.DeletesHeld += sr.DeletesHeld
			}
		}
	}
	return rep, nil
}

// readStreamStatus reads one stream's part of the state.
func readStreamStatus(ctx context.Context, st *state.Stream) (streamStatus, error) {
	var ss streamStatus
	var err error
	if ss.Checkpoint, err = st.Checkpoint(ctx); err != nil {
		return ss, err
	}
	if ss.FailedRows, ss.ParkedRows, err = st.FailedRows(ctx); err != nil {
		return ss, err
	}
	full, err := st.FullPass(ctx)
	if err != nil {
		return ss, err
	}
	ss.ResyncInProgress, ss.RescanInProgress = full == state.FullResync, full == state.FullRescan
	if ss.Delivered, err = st.DeliveredCount(ctx); err != nil {
		return ss, err
	}
	return ss, nil
}

func writeStatus(w io.Writer, st statusReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "state:\t%s\n", st.StatePath)
	for _, name := range st.names {
		ss := st.Streams[name]
		fmt.Fprintf(tw, "%s:\n", name)
		cp := "none (no batch acknowledged yet)"
		if ss.RescanInProgress || ss.ResyncInProgress {
			cp = "none yet in this full pass (it reads from the beginning; what was delivered before is kept)"
		}
		if ss.Checkpoint != nil {
			cp = readableCheckpoint(ss.Checkpoint, st.units[name])
		}
		fmt.Fprintf(tw, "  checkpoint:\t%s\n", cp)
		fmt.Fprintf(tw, "  delivered:\t%d\n", ss.Delivered)
		fmt.Fprintf(tw, "  failed rows:\t%d (%d parked)\n", ss.FailedRows, ss.ParkedRows)
		if ss.Deleted > 0 || ss.DeletesHeld > 0 {
			fmt.Fprintf(tw, "  last pass's deletes:\t%d made, %d held back by the brake\n", ss.Deleted, ss.DeletesHeld)
		}
		if ss.ResyncInProgress {
			fmt.Fprintf(tw, "  resync:\tin progress (the next pass goes on with it)\n")
		}
		if ss.RescanInProgress {
			fmt.Fprintf(tw, "  rescan:\tin progress (the next pass goes on with it)\n")
		}
	}
	if b := st.Binlog; b != nil {
		fmt.Fprintf(tw, "binlog:\n  position:\t%s\n", b.Readable)
		if !b.Backfilled {
			fmt.Fprintf(tw, "  backfill:\tnot completed yet (the next run goes on with it, then streams from the position)\n")
		}
		if b.LagSeconds != nil {
			fmt.Fprintf(tw, "  lag:\t%.3fs (a change committed %s, acknowledged %s)\n", *b.LagSeconds,
				b.EventTime.UTC().Format(time.RFC3339), b.AckedAt.UTC().Format(time.RFC3339Nano))
		}
	}
	if st.LastPass == nil {
		fmt.Fprintf(tw, "last pass:\tnone yet\n")
	} else {
		var lp lastPass
		if err := json.Unmarshal(st.LastPass, &lp); err == nil {
			verdict := "completed"
			if !lp.OK {
				verdict = "FAILED: " + lp.Error
			}
			fmt.Fprintf(tw, "last pass:\t%s, finished %s (%s ago), took %s\n", verdict, lp.FinishedAt.Format(time.RFC3339),
				time.Since(lp.FinishedAt).Round(time.Second), lp.Duration.Round(time.Millisecond))
			for _, name := range st.names {
				r, ok := lp.Streams[name]
				if !ok {
					if len(lp.Streams) == 0 && name == config.StreamGroups {
						r = syncer.StreamReport{Report: lp.Report, Ran: true} // written before there were streams
					} else {
						continue
					}
				}
				fmt.Fprintf(tw, "  %s:\tread %d, imported %d, updated %d, unchanged %d, invalid %d, rejected %d, duplicate %d, parked %d\n",
					name, r.Read, r.Imported, r.Updated, r.Unchanged, r.Invalid, r.Rejected, r.Duplicate, r.Parked)
			}
		}
	}
	return tw.Flush()
}
