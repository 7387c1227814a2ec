package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cometsync/cometsync/internal/state"
)

func newErrorsCmd() *cobra.Command {
	var path string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "errors --config FILE [--json]",
		Short: "List the rows that failed: key, guid, code, message, attempts, first and last seen",
		Long: `List every row in the error store. Failed rows are retried on every pass, whatever
the watermark, until they succeed; after state.park_after attempts a row is parked:
still listed here, retried only when its content changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			rows := []state.RowError{}
			st, err := openStateReadOnly(cfg)
			if err != nil {
				return err
			}
			if st != nil {
				defer st.Close()
				if rows, err = st.Stream("groups").RowErrors(cmd.Context()); err != nil {
					return failedErr(err)
				}
			}
			return writeErrors(cmd.OutOrStdout(), rows, asJSON)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "config file (YAML)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeErrors(w io.Writer, rows []state.RowError, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no failed rows")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tGUID\tCODE\tATTEMPTS\tFIRST SEEN\tLAST SEEN\tMESSAGE")
	for _, r := range rows {
		attempts := fmt.Sprint(r.Attempts)
		if r.Parked {
			attempts += " (parked)"
		}
		guid := r.GUID
		if guid == "" {
			guid = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.RowKey, guid, r.Code, attempts,
			r.FirstSeen.Format(time.RFC3339), r.LastSeen.Format(time.RFC3339), strings.ReplaceAll(r.Message, "\n", " "))
	}
	return tw.Flush()
}
