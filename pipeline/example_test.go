package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/logzio/logzio-jumpcloud/pipeline"
)

// An embedder supplies a source, a transform, a sink and a store; Run wires them.
func Example() {
	// The source reads three records; each makes its own offset a safe resume point.
	source := pipeline.SourceFunc(func(stop context.Context, emit func(pipeline.Event) error) error {
		for offset, record := range []string{`{"msg":"a"}`, `{"msg":"b"}`, `{"msg":"c"}`} {
			if err := emit(pipeline.Event{Data: []byte(record), Position: offset + 1}); err != nil {
				return err
			}
		}
		return nil
	})

	// The sink collects lines; a real one would send them over the network.
	var mu sync.Mutex
	var shipped [][]byte
	sink := pipeline.SinkFunc(func(ctx context.Context, lines [][]byte) error {
		mu.Lock()
		defer mu.Unlock()
		shipped = append(shipped, lines...)
		return nil
	})

	p := pipeline.Pipeline{
		Source:    source,
		Transform: func(data []byte) ([]byte, error) { return bytes.ToUpper(data), nil },
		Sink:      sink,
		Store: pipeline.StoreFunc(func(pos any) error {
			fmt.Println("resume after record", pos)
			return nil
		}),
	}
	if err := p.Run(context.Background()); err != nil {
		fmt.Println("error:", err)
	}
	fmt.Printf("%s\n", bytes.Join(shipped, []byte("\n")))
	// Output:
	// resume after record 3
	// {"MSG":"A"}
	// {"MSG":"B"}
	// {"MSG":"C"}
}
