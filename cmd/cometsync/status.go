package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
)

// statusReport is `cometsync status --json`.
type statusReport struct {
	StatePath        string          `json:"state_path"`
	Checkpoint       json.RawMessage `json:"checkpoint"`
	FailedRows       int             `json:"failed_rows"`
	ParkedRows       int             `json:"parked_rows"`
	ResyncInProgress bool            `json:"resync_in_progress"`
	RescanInProgress bool            `json:"rescan_in_progress"`
	LastPass         json.RawMessage `json:"last_pass"`
	// integerUnit is source.cursor.integer_unit, to show an integer
	// checkpoint's time ("" tells it from the magnitude).
	integerUnit string
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
	rep := statusReport{StatePath: cfg.State.Path, integerUnit: groupsStream(cfg).Cursor.IntegerUnit}
	st, err := openStateReadOnly(cfg)
	if err != nil || st == nil {
		return rep, err
	}
	defer st.Close()
	ctx := cmd.Context()
	if rep.Checkpoint, err = st.Stream("groups").Checkpoint(ctx); err != nil {
		return rep, failedErr(err)
	}
	if rep.FailedRows, rep.ParkedRows, err = st.Stream("groups").FailedRows(ctx); err != nil {
		return rep, failedErr(err)
	}
	full, err := st.Stream("groups").FullPass(ctx)
	if err != nil {
		return rep, failedErr(err)
	}
	rep.ResyncInProgress, rep.RescanInProgress = full == state.FullResync, full == state.FullRescan
	if rep.LastPass, err = st.LastPass(ctx); err != nil {
		return rep, failedErr(err)
	}
	return rep, nil
}

func writeStatus(w io.Writer, st statusReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "state:\t%s\n", st.StatePath)
	cp := "none (no batch acknowledged yet)"
	if st.RescanInProgress || st.ResyncInProgress {
		cp = "none yet in this full pass (it reads from the beginning; what was delivered before is kept)"
	}
	if st.Checkpoint != nil {
		cp = readableCheckpoint(st.Checkpoint, st.integerUnit)
	}
	fmt.Fprintf(tw, "checkpoint:\t%s\n", cp)
	fmt.Fprintf(tw, "failed rows:\t%d (%d parked)\n", st.FailedRows, st.ParkedRows)
	if st.ResyncInProgress {
		fmt.Fprintf(tw, "resync:\tin progress (the next pass goes on with it)\n")
	}
	if st.RescanInProgress {
		fmt.Fprintf(tw, "rescan:\tin progress (the next pass goes on with it)\n")
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
			fmt.Fprintf(tw, "\tread %d, imported %d, updated %d, unchanged %d, invalid %d, rejected %d, parked %d\n",
				lp.Read, lp.Imported, lp.Updated, lp.Unchanged, lp.Invalid, lp.Rejected, lp.Parked)
		}
	}
	return tw.Flush()
}
