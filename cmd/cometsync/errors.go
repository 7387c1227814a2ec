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
	var streams []string
	cmd := &cobra.Command{
		Use:   "errors --config FILE [--stream users,groups,members] [--json]",
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
			selected, err := selectStreams(cfg, streams)
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
				for _, ns := range selected {
					r, err := st.Stream(ns.Name).RowErrors(cmd.Context())
					if err != nil {
						return failedErr(err)
					}
					rows = append(rows, r...)
				}
			}
			return writeErrors(cmd.OutOrStdout(), rows, asJSON, len(selected) > 1)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "config file (YAML)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringSliceVar(&streams, "stream", nil, "list only these streams' rows (users, groups, members)")
	return cmd
}

// writeErrors prints the failed rows; withStream adds a STREAM column.
func writeErrors(w io.Writer, rows []state.RowError, asJSON, withStream bool) error {
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
	if withStream {
		fmt.Fprint(tw, "STREAM\t")
	}
	fmt.Fprintln(tw, "KEY\tID\tCODE\tATTEMPTS\tFIRST SEEN\tLAST SEEN\tMESSAGE")
	for _, r := range rows {
		attempts := fmt.Sprint(r.Attempts)
		if r.Parked {
			attempts += " (parked)"
		}
		guid := r.GUID
		if guid == "" {
			guid = "-"
		}
		if withStream {
			fmt.Fprintf(tw, "%s\t", r.Stream)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.RowKey, guid, r.Code, attempts,
			r.FirstSeen.Format(time.RFC3339), r.LastSeen.Format(time.RFC3339), strings.ReplaceAll(r.Message, "\n", " "))
	}
	return tw.Flush()
}
